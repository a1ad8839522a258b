#include "greet.h"

#include <stdio.h>

char *greet_message(const char *name, char *buf, size_t size)
{
	if (name == NULL || name[0] == '\0')
		name = "world";
	if (size > 0)
		snprintf(buf, size, "Hello, %s!", name);
	return buf;
}

void greet_print(const char *name)
{
	char buf[256];
	puts(greet_message(name, buf, sizeof buf));
}
