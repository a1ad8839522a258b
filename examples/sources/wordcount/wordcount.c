/* wordcount: a small wc(1) built on libcount. Prints "lines words chars"
   for standard input, or for each file named plus a total. */
#include <count.h>
#include <stdio.h>

static void report(const struct count_result *r, const char *name)
{
	if (name)
		printf("%ld %ld %ld %s\n", r->lines, r->words, r->chars, name);
	else
		printf("%ld %ld %ld\n", r->lines, r->words, r->chars);
}

int main(int argc, char **argv)
{
	struct count_result total;
	int i, status = 0;
	if (argc < 2) {
		count_init(&total);
		if (count_stream(&total, stdin) != 0) {
			perror("wordcount: stdin");
			return 1;
		}
		report(&total, NULL);
		return 0;
	}
	count_init(&total);
	for (i = 1; i < argc; i++) {
		struct count_result r;
		FILE *f = fopen(argv[i], "r");
		if (f == NULL) {
			perror(argv[i]);
			status = 1;
			continue;
		}
		count_init(&r);
		if (count_stream(&r, f) != 0) {
			perror(argv[i]);
			status = 1;
		}
		fclose(f);
		report(&r, argv[i]);
		total.lines += r.lines;
		total.words += r.words;
		total.chars += r.chars;
	}
	if (argc > 2)
		report(&total, "total");
	return status;
}
