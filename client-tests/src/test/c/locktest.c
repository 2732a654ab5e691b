/* Lock helper for the guest tests (busybox has no flock applet, and nothing for fcntl locks).
 *   locktest hold  FILE MARKER SECONDS   fcntl write lock on all of FILE (waiting), create MARKER, sleep, exit
 *   locktest try   FILE                  fcntl write lock without waiting: exit 0 if taken, 1 if held elsewhere
 *   locktest fhold FILE MARKER SECONDS   the same with flock(2)
 *   locktest ftry  FILE
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int lock_fcntl(int fd, int wait) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    return fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: locktest hold|try|fhold|ftry FILE [MARKER SECONDS]\n");
        return 2;
    }
    int flockmode = argv[1][0] == 'f';
    const char *cmd = argv[1] + flockmode;
    int fd = open(argv[2], O_RDWR | O_CREAT, 0644);
    if (fd < 0) { perror("open"); return 2; }
    if (strcmp(cmd, "hold") == 0 && argc == 5) {
        int r = flockmode ? flock(fd, LOCK_EX) : lock_fcntl(fd, 1);
        if (r < 0) { perror("lock"); return 2; }
        close(open(argv[3], O_WRONLY | O_CREAT, 0644));
        sleep(atoi(argv[4]));
        return 0;
    }
    if (strcmp(cmd, "try") == 0) {
        int r = flockmode ? flock(fd, LOCK_EX | LOCK_NB) : lock_fcntl(fd, 0);
        if (r == 0) return 0;
        if (errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK) return 1;
        perror("lock");
        return 2;
    }
    fprintf(stderr, "bad arguments\n");
    return 2;
}
