package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.protocol.p9.P9;
import io.bridgefs.protocol.p9.P9Message.*;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The 9P security models from a Linux guest (issue 9), in one boot: the same workload and
 * pjdfstest-style permission cases (sticky and setgid directories, access by other users, chmod and
 * chown by non-owners) with two guest users on passthrough, mapped, squash and none exports of a root
 * server and on a mapped export of a server run as nobody; setuid files, device nodes, FIFOs and
 * symlinks under mapped read the same through QEMU's own 9P server (virtio-9p, security_model=
 * mapped-xattr) on the same directory, and what QEMU's server wrote reads the same through bridgefs;
 * after the guest, the host holds what each model promises, and a restarted server shows the guest's
 * mapped tree exactly as the guest listed it.
 */
class GuestSecurityModelsIT {
    static final List<String> MAPPED_NAMES = List.of("suid", "cdev", "fifo", "link", "d", "fromqemu", "bdev", "qlink");

    static String script(int port, int nobodyPort) {
        return ("set -e\n" + GuestVm.NETWORK_UP + """
                check() { if ! eval "$1"; then echo "GUEST-CHECK-FAILED: $1"; exit 1; fi; }
                as() { who=$1; shift; timeout 60 su $who -s /bin/sh -c "$*" </dev/null; }
                mkdir -p /etc /mnt/p /mnt/m /mnt/s /mnt/n /mnt/nr /mnt/q
                echo 'u:x:1000:1000::/:/bin/sh' >> /etc/passwd
                echo 'v:x:1001:1001::/:/bin/sh' >> /etc/passwd
                for e in p m s n; do
                  mount -t 9p -o trans=tcp,port=PORT,version=9p2000.L,aname=$e,msize=262144,cache=none 10.0.2.2 /mnt/$e
                done
                mount -t 9p -o trans=tcp,port=NOBODY,version=9p2000.L,aname=nr,msize=262144,cache=none 10.0.2.2 /mnt/nr
                mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none qm /mnt/q
                """ + GuestFilePathIT.FILE_WORKLOAD + """
                # $2 = owners: whether files keep the owner who made them (not under squash)
                perms() {
                  set -x
                  d=$1/perm; owners=$2
                  mkdir $d; chmod 777 $d
                  mkdir $d/t; chmod 1777 $d/t
                  as u "echo u > $d/t/uf"
                  check "! as v 'rm -f $d/t/uf' 2>/dev/null"
                  check "[ -e $d/t/uf ]"
                  if [ $owners = yes ]; then check "as u 'rm -f $d/t/uf'"; fi
                  echo secret > $d/priv; chmod 600 $d/priv
                  check "! as u 'cat $d/priv' 2>/dev/null"
                  echo open > $d/pub; chmod 644 $d/pub
                  check "[ \\"\\$(as u 'cat $d/pub')\\" = open ]"
                  check "! as u 'echo x >> $d/pub' 2>/dev/null"
                  check "! as u 'chmod 777 $d/pub' 2>/dev/null"
                  check "! as u 'chown 1000 $d/pub' 2>/dev/null"
                  check "[ \\$(stat -c %a $d/pub) = 644 ]"
                  if [ $owners = yes ]; then
                    as u "echo mine > $d/mine; chmod 600 $d/mine"
                    check "! as v 'cat $d/mine' 2>/dev/null"
                    check "[ \\"\\$(as u 'cat $d/mine')\\" = mine ]"
                  fi
                  mkdir $d/sg; chgrp 1000 $d/sg; chmod 2777 $d/sg
                  as u "echo x > $d/sg/f; mkdir $d/sg/sub"
                  check "[ \\$(stat -c %g $d/sg/f) = \\$(stat -c %g $d/sg) ]"
                  check "[ \\$(stat -c %a $d/sg/sub) -ge 2000 ]"
                  set +x
                }

                for e in p m s n nr; do
                  file_workload /mnt/$e/work
                  if [ $e = s ]; then perms /mnt/$e no; else perms /mnt/$e yes; fi
                  echo "GUEST-MODEL-OK $e"
                done

                # mapped: what the guest sets exists only in its view, and QEMU's mapped-xattr reads it the same
                cd /mnt/m
                as u "echo u-data > /mnt/m/ufile"
                touch suid; chmod 4755 suid
                mknod cdev c 1 3; mkfifo fifo; ln -s some/target link
                mkdir d; chown 1000:1000 d; chmod 2750 d
                check '[ "$(stat -c %a suid)" = 4755 ] && [ "$(stat -c %F cdev)" = "character special file" ]'
                touch /mnt/q/fromqemu; chmod 6711 /mnt/q/fromqemu; chown 1000:1001 /mnt/q/fromqemu
                mknod /mnt/q/bdev b 8 1; ln -s /etc/qemu-target /mnt/q/qlink
                echo through-qemu > /mnt/q/qdata
                check '[ "$(cat /mnt/m/qdata)" = through-qemu ]'
                check '[ "$(readlink /mnt/q/link)" = some/target ] && [ "$(readlink /mnt/m/qlink)" = /etc/qemu-target ]'
                for f in NAMES; do
                  check "[ \\"\\$(stat -c '%f %u %g %t %T %s' /mnt/m/$f)\\" = \\"\\$(stat -c '%f %u %g %t %T %s' /mnt/q/$f)\\" ]"
                  echo "LIST $f $(stat -c '%f %u %g %t %T %s' /mnt/m/$f)"
                done
                cd /
                as u "touch /mnt/nr/u-nobody"; mknod /mnt/nr/null c 1 3
                check '[ "$(stat -c %u /mnt/nr/u-nobody)" = 1000 ] && [ "$(stat -c %t,%T /mnt/nr/null)" = 1,3 ]'
                as u "touch /mnt/p/u-pass /mnt/s/u-squash /mnt/n/u-none"
                for m in p m s n nr q; do umount /mnt/$m 2>/dev/null || echo "umount /mnt/$m: busy (left to poweroff)"; done
                echo GUEST-MODELS-OK
                """).replace("NOBODY", String.valueOf(nobodyPort)).replace("PORT", String.valueOf(port))
                .replace("NAMES", String.join(" ", MAPPED_NAMES));
    }

    static int uid(Path p) throws Exception {
        return (Integer) Files.getAttribute(p, "unix:uid", LinkOption.NOFOLLOW_LINKS);
    }

    static int mode(Path p) throws Exception {
        return (Integer) Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS);
    }

    @Test
    void everyModelFromALinuxGuest(@TempDir Path dir) throws Exception {
        Tools.require("qemu-system-x86_64", "setpriv");
        org.junit.jupiter.api.Assumptions.assumeTrue(BackingErrorsIT.root(), "passthrough and a second server user need root (CI runs as root)");
        Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwxr-xr-x"));
        Map<String, Path> shares = new LinkedHashMap<>();
        for (String e : List.of("p", "m", "s", "n", "nr")) {
            Path d = Files.createDirectories(dir.resolve("share-" + e));
            Files.setPosixFilePermissions(d, PosixFilePermissions.fromString("rwxrwxrwx"));     // guest users create in the roots
            shares.put(e, d);
        }
        Tools.run(Duration.ofSeconds(5), "chown", "65534:65534", shares.get("nr").toString()).ok("chown");
        int port = BridgefsProcess.freePort(), nobodyPort = BridgefsProcess.freePort();
        String[] rootArgs = {"--9p-listen", "127.0.0.1:" + port,
                "--9p-export", "p=" + shares.get("p") + ",security=passthrough",
                "--9p-export", "m=" + shares.get("m") + ",security=mapped",
                "--9p-export", "s=" + shares.get("s") + ",security=squash,squash=2000:2000",
                "--9p-export", "n=" + shares.get("n") + ",security=none"};
        String console;
        try (var s = BridgefsProcess.start(dir, rootArgs);
             var nobody = BridgefsProcess.startAsUser(dir, 65534, 65534, "--9p-listen", "127.0.0.1:" + nobodyPort,
                     "--9p-export", "nr=" + shares.get("nr") + ",security=mapped")) {
            for (String m : List.of("security=passthrough", "security=mapped", "security=squash", "security=none")) {
                assertTrue(s.stdout.toString().contains(m), "start-up names each export's model:\n" + s.stdout);
            }
            Path initrd = GuestVm.initramfs(dir, List.of("virtio_pci", "virtio_net", "9pnet_fd", "9pnet_virtio", "9p"),
                    script(port, nobodyPort), Map.of());
            console = GuestVm.boot(dir, initrd, List.of("-nic", "user,model=virtio-net-pci",
                    "-virtfs", "local,path=" + shares.get("m") + ",mount_tag=qm,security_model=mapped-xattr,id=qm"), Duration.ofSeconds(600));
            assertEquals(0, GuestVm.exitCode(console), "guest workload failed:\n" + console);
            assertTrue(console.contains("GUEST-MODELS-OK"), console);
            assertEquals(0, s.stop());
            assertEquals(0, nobody.stop());
        }
        // on the host: what each model promises
        assertEquals(1000, uid(shares.get("p").resolve("u-pass")), "passthrough: created as the guest user");
        assertEquals(2000, uid(shares.get("s").resolve("u-squash")), "squash: everything belongs to the squash uid");
        assertEquals(1000, uid(shares.get("n").resolve("u-none")), "none: ownership as the client sets it");
        for (String f : List.of("ufile", "suid", "cdev", "fifo", "link")) {
            Path p = shares.get("m").resolve(f);
            assertTrue(Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS), f + " is a plain file on the host");
            assertEquals(0, uid(p), f + " belongs to the server's user");
            assertEquals(0100600, mode(p), f + ": 0600 on the host");
        }
        assertEquals(040700, mode(shares.get("m").resolve("d")));
        for (String f : List.of("u-nobody", "null")) {
            assertEquals(65534, uid(shares.get("nr").resolve(f)), "the unprivileged server's files are its own");
            assertEquals(0100600, mode(shares.get("nr").resolve(f)));
        }
        // a restarted server shows exactly what the guest listed
        Map<String, String> listed = new LinkedHashMap<>();
        console.lines().filter(l -> l.startsWith("LIST ")).forEach(l -> {
            String[] w = l.split(" ", 3);
            listed.put(w[1], w[2].trim());
        });
        assertEquals(MAPPED_NAMES, List.copyOf(listed.keySet()), console);
        try (var s = BridgefsProcess.start(dir, rootArgs); RawP9Client c = P9MappedIT.attach(port, "m", 0)) {
            for (String f : MAPPED_NAMES) {
                Rgetattr a = P9MappedIT.getattr(c, f);
                long major = (a.rdev() >> 8) & 0xfff, minor = (a.rdev() & 0xff) | ((a.rdev() >> 12) & 0xfff00);
                assertEquals(listed.get(f), String.format("%x %d %d %x %x %d", a.mode(), a.uid(), a.gid(), major, minor, a.size()),
                        f + " after a restart");
            }
            c.close();
            assertEquals(0, s.stop());
        }
    }
}
