/* hello: greets each name on its command line (or the world) with libgreet. */
#include <greet.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	int i;
	if (argc < 2) {
		greet_print(NULL);
		return 0;
	}
	for (i = 1; i < argc; i++)
		greet_print(argv[i]);
	return 0;
}
