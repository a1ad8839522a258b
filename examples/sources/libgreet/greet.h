/* libgreet: builds friendly greetings. */
#ifndef GREET_H
#define GREET_H

#include <stddef.h>

#define GREET_VERSION "1.0"

/* Writes "Hello, <name>!" into buf (always NUL-terminated when size > 0)
   and returns buf. A NULL or empty name greets the world. */
char *greet_message(const char *name, char *buf, size_t size);

/* Prints the greeting for name on stdout, followed by a newline. */
void greet_print(const char *name);

#endif
