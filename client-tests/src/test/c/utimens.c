/* utimens PATH ATIME_SEC ATIME_NSEC MTIME_SEC MTIME_NSEC [-h]: utimensat(2) with nanoseconds, for the
 * guest tests (busybox touch sets microseconds only). -h: the symlink itself (AT_SYMLINK_NOFOLLOW). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: utimens PATH ASEC ANSEC MSEC MNSEC [-h]\n");
        return 2;
    }
    struct timespec t[2] = {{atol(argv[2]), atol(argv[3])}, {atol(argv[4]), atol(argv[5])}};
    int flags = argc > 6 && strcmp(argv[6], "-h") == 0 ? AT_SYMLINK_NOFOLLOW : 0;
    if (utimensat(AT_FDCWD, argv[1], t, flags) != 0) {
        perror("utimensat");
        return 1;
    }
    return 0;
}
