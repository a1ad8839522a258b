/* libcount: counts lines, words and characters, like wc(1). */
#ifndef COUNT_H
#define COUNT_H

#include <stddef.h>
#include <stdio.h>

struct count_result {
	long lines;
	long words;
	long chars;
	int in_word; /* whether the last character counted was inside a word */
};

/* Zeroes a result. */
void count_init(struct count_result *result);

/* Adds the counts of len bytes of text to result. Words are runs of
   non-space characters; a word split across two calls counts once if
   the caller passes the same result. */
void count_buffer(struct count_result *result, const char *text, size_t len);

/* Counts a whole stream into result; returns 0, or -1 on a read error. */
int count_stream(struct count_result *result, FILE *stream);

#endif
