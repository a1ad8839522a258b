#include "count.h"

#include <stdio.h>
#include <string.h>

int main(void)
{
	struct count_result r;
	const char *text = "one two\nthree\n";
	count_init(&r);
	count_buffer(&r, text, 4);
	count_buffer(&r, text + 4, strlen(text) - 4);
	if (r.lines != 2 || r.words != 3 || r.chars != 14) {
		fprintf(stderr, "count_test: got %ld %ld %ld\n", r.lines, r.words, r.chars);
		return 1;
	}
	puts("count_test: ok");
	return 0;
}
