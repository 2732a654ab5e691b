/* xattr for the guest tests (busybox has no setfattr/getfattr):
 *   xattr set PATH NAME VALUE    setxattr(2)
 *   xattr get PATH NAME          getxattr(2): prints the value
 *   xattr list PATH              listxattr(2): prints the names, one per line
 *   xattr setcap PATH            security.capability = CAP_SYS_ADMIN, permitted and effective (what setcap
 *                                cap_sys_admin+ep would write)
 * Prints "ok" (set, setcap) or the result; on failure prints E<errno> (E1 is EPERM) and exits 1. */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static int failed(void) {
    printf("E%d\n", errno);
    return 1;
}

int main(int argc, char **argv) {
    char buf[4096];
    if (argc == 5 && strcmp(argv[1], "set") == 0) {
        if (setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) != 0) return failed();
        puts("ok");
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "get") == 0) {
        ssize_t n = getxattr(argv[2], argv[3], buf, sizeof buf - 1);
        if (n < 0) return failed();
        buf[n] = 0;
        puts(buf);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "list") == 0) {
        ssize_t n = listxattr(argv[2], buf, sizeof buf);
        if (n < 0) return failed();
        for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1) puts(buf + i);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "setcap") == 0) {
        struct vfs_cap_data cap;
        memset(&cap, 0, sizeof cap);
        cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
        cap.data[0].permitted = 1u << CAP_SYS_ADMIN;
        if (setxattr(argv[2], "security.capability", &cap, XATTR_CAPS_SZ_2, 0) != 0) return failed();
        puts("ok");
        return 0;
    }
    fprintf(stderr, "usage: xattr set PATH NAME VALUE | get PATH NAME | list PATH | setcap PATH\n");
    return 2;
}
