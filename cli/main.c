/* psfleet -- the one command. main() only dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("psfleet\n");
	return 0;
}
