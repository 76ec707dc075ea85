#include <stdio.h>

int main(void)
{
	puts("conclave: not yet");
	return 0;
}
