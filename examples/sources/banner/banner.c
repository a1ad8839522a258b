/* banner: frames a libgreet greeting and reports its libcount statistics. */
#include <count.h>
#include <greet.h>
#include <stdio.h>
#include <string.h>

static void rule(size_t width)
{
	size_t i;
	putchar('+');
	for (i = 0; i < width + 2; i++)
		putchar('-');
	puts("+");
}

int main(int argc, char **argv)
{
	char greeting[256], stats[128];
	struct count_result r;
	size_t width;

	greet_message(argc > 1 ? argv[1] : NULL, greeting, sizeof greeting);
	count_init(&r);
	count_buffer(&r, greeting, strlen(greeting));
	snprintf(stats, sizeof stats, "%ld words, %ld chars", r.words, r.chars);

	width = strlen(greeting) > strlen(stats) ? strlen(greeting) : strlen(stats);
	rule(width);
	printf("| %-*s |\n", (int)width, greeting);
	printf("| %-*s |\n", (int)width, stats);
	rule(width);
	return 0;
}
