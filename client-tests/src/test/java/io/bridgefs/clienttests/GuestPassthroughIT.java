package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * security=passthrough from a Linux guest (part of issue 9): the guest mounts one export as is and one
 * with root=squash; guest uid 1000 cannot read a host file that is 0600 root, and what it creates is
 * owned by 1000 on the host; guest root on the squashed export is nobody. Then uid 1000, uid 1001 and
 * root take turns on one mount (issue 11: a network thread keeps a walk's user for that user's next
 * walk): each gets its own permissions. The guest's kernel checks search permission itself before it
 * asks, so {@code P9PassthroughIT} sends the refused walks on the wire.
 */
class GuestPassthroughIT {
    static String script(int port) {
        return "set -e\n" + GuestVm.NETWORK_UP + """
                check() { if ! eval "$1"; then echo "GUEST-CHECK-FAILED: $1"; exit 1; fi; }
                mkdir -p /etc /mnt/p /mnt/s
                echo 'u:x:1000:1000::/:/bin/sh' >> /etc/passwd
                mount -t 9p -o trans=tcp,port=PORT,version=9p2000.L,aname=p,msize=262144,cache=none 10.0.2.2 /mnt/p
                mount -t 9p -o trans=tcp,port=PORT,version=9p2000.L,aname=s,msize=262144,cache=none 10.0.2.2 /mnt/s
                check '[ "$(cat /mnt/p/secret)" = "root only" ]'
                check '! su u -s /bin/sh -c "cat /mnt/p/secret" 2>/dev/null'
                su u -s /bin/sh -c "echo from-1000 > /mnt/p/created-by-1000"
                check '[ "$(stat -c %u /mnt/p/created-by-1000)" = 1000 ]'
                check '! su u -s /bin/sh -c "echo x > /mnt/p/rootdir/nope" 2>/dev/null'
                # users in turn on one mount (one connection: one network thread): each lookup as its own user
                echo 'v:x:1001:1001::/:/bin/sh' >> /etc/passwd
                su u -s /bin/sh -c "mkdir /mnt/p/private && echo mine > /mnt/p/private/f && chmod 700 /mnt/p/private"
                i=0
                while [ $i -lt 20 ]; do
                  check '[ "$(su u -s /bin/sh -c "cat /mnt/p/private/f")" = mine ]'
                  check '! su v -s /bin/sh -c "cat /mnt/p/private/f" 2>/dev/null'
                  check '[ "$(cat /mnt/p/private/f)" = mine ]'
                  check '! su u -s /bin/sh -c "cat /mnt/p/secret" 2>/dev/null'
                  i=$((i+1))
                done
                echo from-root > /mnt/s/created-by-root
                check '! cat /mnt/s/secret 2>/dev/null'
                umount /mnt/p; umount /mnt/s
                echo GUEST-PASSTHROUGH-OK
                """.replace("PORT", String.valueOf(port));
    }

    @Test
    void guestUsersMeetTheHostsPermissions(@TempDir Path dir) throws Exception {
        Tools.require("qemu-system-x86_64");
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "passthrough needs root (CI runs as root)");
        Path share = P9PassthroughIT.shareWithRootSecret(dir);
        int port = BridgefsProcess.freePort();
        try (var s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "p=" + share + ",security=passthrough",
                "--9p-export", "s=" + share + ",security=passthrough,root=squash")) {
            Path initrd = GuestVm.initramfs(dir, List.of("virtio_pci", "virtio_net", "9pnet_fd", "9p"), script(port), java.util.Map.of());
            String console = GuestVm.boot(dir, initrd, List.of("-nic", "user,model=virtio-net-pci"), Duration.ofSeconds(300));
            assertEquals(0, GuestVm.exitCode(console), "guest workload failed:\n" + console);
            assertTrue(console.contains("GUEST-PASSTHROUGH-OK"), console);
            assertEquals(1000, Files.getAttribute(share.resolve("created-by-1000"), "unix:uid", LinkOption.NOFOLLOW_LINKS));
            assertEquals(65534, Files.getAttribute(share.resolve("created-by-root"), "unix:uid", LinkOption.NOFOLLOW_LINKS),
                    "guest root on a root=squash export is nobody");
            assertFalse(Files.exists(share.resolve("rootdir/nope")));
            assertEquals(0, s.stop());
        }
    }

    /**
     * A squashed guest root is the attacker the server must stop (issue 11, Next idea 2 of session 26):
     * the guest kernel lets its root set {@code trusted.*} xattrs and file capabilities, remove any file
     * and set the setuid bit, so every refusal below is the server's (as nobody, with no capability but
     * switching users). The same operations by unsquashed root on another mount succeed, which shows that
     * they reach the server at all. Checked in the guest (the errno it got) and on the host (nothing set).
     */
    @Test
    void aSquashedGuestRootGetsNoHostPrivilege(@TempDir Path dir) throws Exception {
        Tools.require("qemu-system-x86_64");
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "passthrough needs root (CI runs as root)");
        Path share = P9PassthroughIT.shareWithRootSecret(dir);
        Path keep = Files.writeString(share.resolve("rootdir").resolve("keep"), "root's");
        Path marked = Files.writeString(share.resolve("marked"), "root's, 0644");
        Files.setPosixFilePermissions(marked, PosixFilePermissions.fromString("rw-r--r--"));
        P9PassthroughIT.python("import os, sys; os.setxattr(sys.argv[1], 'trusted.secret', b'root only')", marked);
        List<Path> tools = new java.util.ArrayList<>();
        for (String name : List.of("tool", "tool2")) {
            Path t = Files.writeString(share.resolve(name), "#!/bin/sh\necho tool\n");
            Files.setPosixFilePermissions(t, PosixFilePermissions.fromString("rwxr-xr-x"));
            tools.add(t);
        }
        int port = BridgefsProcess.freePort();
        String script = "set -e\n" + GuestVm.NETWORK_UP + """
                check() { if ! eval "$1"; then echo "GUEST-CHECK-FAILED: $1"; exit 1; fi; }
                mkdir -p /mnt/p /mnt/s
                mount -t 9p -o trans=tcp,port=PORT,version=9p2000.L,aname=p,msize=262144,cache=none 10.0.2.2 /mnt/p
                mount -t 9p -o trans=tcp,port=PORT,version=9p2000.L,aname=s,msize=262144,cache=none 10.0.2.2 /mnt/s
                # guest root on the squashed export: the guest kernel allows all of this, the server must not
                check '[ "$(xattr setcap /mnt/s/tool)" = E1 ]'
                check '[ "$(xattr set /mnt/s/marked trusted.mark x)" = E1 ]'
                check '[ "$(xattr set /mnt/s/marked user.mark x)" = E13 ]'
                check '[ "$(xattr get /mnt/s/marked trusted.secret)" = E61 ]'
                check '! xattr list /mnt/s/marked | grep -q trusted'
                check '! rm -f /mnt/s/rootdir/keep 2>/dev/null'
                check '! chmod 4755 /mnt/s/tool 2>/dev/null'
                echo mine > /mnt/s/own
                check '[ "$(xattr set /mnt/s/own user.mark yes)" = ok ]'
                check '[ "$(xattr get /mnt/s/own user.mark)" = yes ]'
                check '[ "$(xattr setcap /mnt/s/own)" = E1 ]'
                check '[ "$(xattr set /mnt/s/own trusted.mark x)" = E1 ]'
                # unsquashed root: the same calls reach the server and succeed
                check '[ "$(xattr get /mnt/p/marked trusted.secret)" = "root only" ]'
                check '[ "$(xattr setcap /mnt/p/tool2)" = ok ]'
                check '[ "$(xattr set /mnt/p/marked trusted.mark x)" = ok ]'
                umount /mnt/p; umount /mnt/s
                echo GUEST-SQUASHED-ROOT-OK
                """.replace("PORT", String.valueOf(port));
        try (var s = BridgefsProcess.start(dir, "--9p-listen", "127.0.0.1:" + port, "--9p-export", "p=" + share + ",security=passthrough",
                "--9p-export", "s=" + share + ",security=passthrough,root=squash")) {
            Path initrd = GuestVm.initramfs(dir, List.of("virtio_pci", "virtio_net", "9pnet_fd", "9p"), script,
                    java.util.Map.of("bin/xattr", GuestVm.helper(dir, "xattr")));
            String console = GuestVm.boot(dir, initrd, List.of("-nic", "user,model=virtio-net-pci"), Duration.ofSeconds(300));
            assertEquals(0, GuestVm.exitCode(console), "guest workload failed:\n" + console);
            assertTrue(console.contains("GUEST-SQUASHED-ROOT-OK"), console);
            assertTrue(Files.exists(keep), "root's file in root's directory is still there");
            assertEquals(PosixFilePermissions.fromString("rwxr-xr-x"), Files.getPosixFilePermissions(tools.get(0)), "no setuid bit");
            assertEquals(List.of(), P9PassthroughIT.xattrs(tools.get(0), "security.capability"), "no file capability");
            assertEquals(List.of("security.capability"), P9PassthroughIT.xattrs(tools.get(1), "security.capability"), "root's own setcap");
            assertEquals(List.of("trusted.mark", "trusted.secret"), P9PassthroughIT.xattrs(marked).stream().sorted().toList(),
                    "only unsquashed root's trusted.mark beside the test's own");
            Path own = share.resolve("own");
            assertEquals(65534, Files.getAttribute(own, "unix:uid", LinkOption.NOFOLLOW_LINKS));
            assertEquals(List.of("user.mark"), P9PassthroughIT.xattrs(own), "the squashed root's user.* on its own file only");
            assertEquals(0, s.stop());
        }
    }
}
