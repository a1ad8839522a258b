#include "count.h"

#include <ctype.h>
#include <string.h>

void count_init(struct count_result *result)
{
	memset(result, 0, sizeof *result);
}

void count_buffer(struct count_result *result, const char *text, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		result->chars++;
		if (c == '\n')
			result->lines++;
		if (isspace(c)) {
			result->in_word = 0;
		} else if (!result->in_word) {
			result->in_word = 1;
			result->words++;
		}
	}
}

int count_stream(struct count_result *result, FILE *stream)
{
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, stream)) > 0)
		count_buffer(result, buf, n);
	return ferror(stream) ? -1 : 0;
}
