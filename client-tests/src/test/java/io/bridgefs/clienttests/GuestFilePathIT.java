package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The file path end to end: a Linux guest under QEMU mounts a bridgefs directory with
 * {@code mount -t 9p -o trans=tcp,version=9p2000.L} three times (cache=none, loose, mmap) and runs a
 * scripted workload on each; the results are checked in the guest and then on the host.
 */
class GuestFilePathIT {

    /**
     * The guest's file workload on directory $1 (made if missing): write and append, a 3 MiB random file
     * and its md5, copy and truncate, rename, hard and symbolic links, chmod through a link, recursive
     * remove, read after unlink. Needs the script's {@code check} function; leaves D set to $1.
     */
    static final String FILE_WORKLOAD = """
            file_workload() {
              D=$1
              mkdir -p $D/a/b/c
              echo hello > $D/f
              check '[ "$(cat $D/f)" = hello ]'
              echo more >> $D/f
              check '[ "$(cat $D/f)" = "$(printf "hello\\nmore")" ]'
              dd if=/dev/urandom of=$D/big bs=65536 count=48 2>/dev/null
              md5sum $D/big | cut -d' ' -f1 > $D/big.md5
              check '[ "$(md5sum $D/big | cut -d" " -f1)" = "$(cat $D/big.md5)" ]'
              cp $D/big $D/trunc
              truncate -s 10000 $D/trunc
              check '[ "$(stat -c %s $D/trunc)" = 10000 ]'
              check '[ "$(head -c 10000 $D/big | md5sum)" = "$(md5sum < $D/trunc)" ]'
              mv $D/f $D/a/b/g
              check '[ -f $D/a/b/g ] && [ ! -e $D/f ]'
              ln $D/a/b/g $D/hard
              check '[ "$(stat -c %h $D/hard)" = 2 ]'
              ln -s a/b/g $D/sym
              check '[ "$(readlink $D/sym)" = a/b/g ]'
              check '[ "$(cat $D/sym)" = "$(printf "hello\\nmore")" ]'
              chmod 640 $D/hard
              check '[ "$(stat -c %a $D/a/b/g)" = 640 ]'
              mkdir -p $D/x/y/z && rm -r $D/x
              check '[ ! -e $D/x ]'
              echo "still here" > $D/tmp
              exec 3<$D/tmp
              rm $D/tmp
              check '[ ! -e $D/tmp ]'
              check '[ "$(cat <&3)" = "still here" ]'
              exec 3<&-
            }
            """;

    static String script(int port) {
        return ("set -e\n" + GuestVm.NETWORK_UP + """
                check() { if ! eval "$1"; then echo "GUEST-CHECK-FAILED: $1"; exit 1; fi; }
                """ + FILE_WORKLOAD + """
                for mode in none loose mmap; do
                  mkdir -p /mnt/$mode
                  mount -t 9p -o trans=tcp,port=PORT,version=9p2000.L,aname=share,msize=262144,cache=$mode 10.0.2.2 /mnt/$mode
                  D=/mnt/$mode/work-$mode
                  file_workload $D
                  for kind in "" f; do
                    rm -f /tmp/locked
                    locktest ${kind}hold $D/lockfile /tmp/locked 3 &
                    n=0; while [ ! -e /tmp/locked ] && [ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done
                    check '[ -e /tmp/locked ]'
                    check '! locktest ${kind}try $D/lockfile'
                    wait
                    check 'locktest ${kind}try $D/lockfile'
                  done
                  if [ $mode = none ]; then n=2000; else n=200; fi
                  mkdir $D/many
                  i=0; while [ $i -lt $n ]; do : > $D/many/e$i; i=$((i+1)); done
                  check '[ "$(ls $D/many | wc -l)" = $n ]'
                  check '[ "$(ls $D/many | sort -u | wc -l)" = $n ]'
                  if [ $mode = none ]; then
                    # issue 13: modes as the guest asks, a refused truncate, times on symlinks and in ns, setuid
                    umask 0; mkdir $D/m777; : > $D/f666; mkfifo $D/p666; umask 022
                    check '[ "$(stat -c %a $D/m777)" = 777 ]'
                    check '[ "$(stat -c %a $D/f666)" = 666 ]'
                    check '[ "$(stat -c %a $D/p666)" = 666 ]'
                    echo abc > $D/tr
                    check '! truncate -s 999999999999999 $D/tr 2>/dev/null'
                    check '[ "$(stat -c %s $D/tr)" = 4 ]'
                    check 'sync'
                    ln -s tr $D/trlink
                    touch -h -d '2002-01-01 00:00:00' $D/trlink
                    check '[ "$(stat -c %Y $D/trlink)" = 1009843200 ]'
                    # utimensat with nanoseconds: this guest kernel's 9P client keeps whole seconds only (its
                    # superblock's time granularity; the server keeps nanoseconds, P9CorrectnessIT)
                    utimens $D/trlink 1000000000 5 1100000000 7 -h
                    check '[ "$(stat -c %Y $D/trlink)" = 1100000000 ]'
                    check '[ "$(stat -c %Y $D/tr)" != 1100000000 ]'
                    : > $D/nsdst
                    utimens $D/nsdst 1000000000 100000000 1000000000 123456789
                    check '[ "$(stat -c %Y $D/nsdst)" = "$(stat -c %Y /mnt/$mode/nsref)" ]'
                    echo "GUEST-NS nsdst $(stat -c %y $D/nsdst) nsref $(stat -c %y /mnt/$mode/nsref)"
                    : > $D/suid; chmod 4777 $D/suid
                    mkdir -p /etc; grep -q '^u:' /etc/passwd 2>/dev/null || echo 'u:x:1000:1000::/:/bin/sh' >> /etc/passwd
                    su u -s /bin/sh -c "echo x >> $D/suid"
                    check '[ "$(stat -c %a $D/suid)" = 777 ]'
                  fi
                  echo "GUEST-MODE-OK $mode"
                  umount /mnt/$mode
                done
                """).replace("PORT", String.valueOf(port));
    }

    @Test
    void guestMountsAndWorksInThreeCacheModes(@TempDir Path dir) throws Exception {
        Tools.require("qemu-system-x86_64");
        Path share = Files.createDirectories(dir.resolve("share"));
        Files.writeString(share.resolve("nsref"), "a file whose mtime has nanoseconds");
        Files.setLastModifiedTime(share.resolve("nsref"), java.nio.file.attribute.FileTime.from(java.time.Instant.ofEpochSecond(1_000_000_000L, 123_456_789L)));
        try (var s = BridgefsProcess.start(dir, "--9p-export", "share=share", "--9p-listen", "127.0.0.1:" + BridgefsProcess.freePort())) {
            int port = s.p9Port();
            // capture-corpus.sh: the guest's 9P session recorded for the fuzzing corpus
            String capture = System.getProperty("corpus.capture");
            TeeProxy tee = capture == null ? null : new TeeProxy(port, Path.of(capture), "9p-guest");
            if (tee != null) port = tee.port();
            Path initrd = GuestVm.initramfs(dir, List.of("virtio_pci", "virtio_net", "9pnet_fd", "9p"), script(port),
                    java.util.Map.of("bin/locktest", GuestVm.lockHelper(dir), "bin/utimens", GuestVm.helper(dir, "utimens")));
            String console = GuestVm.boot(dir, initrd, List.of("-nic", "user,model=virtio-net-pci"), Duration.ofSeconds(400));
            assertEquals(0, GuestVm.exitCode(console), "guest workload failed:\n" + console);
            for (String mode : List.of("none", "loose", "mmap")) {
                assertTrue(console.contains("GUEST-MODE-OK " + mode), mode + " did not complete:\n" + console);
                Path d = share.resolve("work-" + mode);
                assertEquals("hello\nmore\n", Files.readString(d.resolve("a/b/g")), "content seen on the host (" + mode + ")");
                assertEquals(2, ((Number) Files.getAttribute(d.resolve("hard"), "unix:nlink")).intValue());
                assertEquals("a/b/g", Files.readSymbolicLink(d.resolve("sym")).toString());
                assertEquals("rw-r-----", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(d.resolve("hard"))));
                assertEquals(10000, Files.size(d.resolve("trunc")));
                assertEquals(Files.readString(d.resolve("big.md5")).trim(), Tools.run(Duration.ofSeconds(30), "md5sum", d.resolve("big").toString()).ok("md5sum").out().split(" ")[0]);
                assertFalse(Files.exists(d.resolve("x")));
                assertFalse(Files.exists(d.resolve("tmp")), "the unlinked-while-open file is gone");
                try (Stream<Path> l = Files.list(d.resolve("many"))) {
                    assertEquals(mode.equals("none") ? 2000 : 200, l.count());
                }
                if (mode.equals("none")) {
                    assertEquals("rwxrwxrwx", java.nio.file.attribute.PosixFilePermissions.toString(Files.getPosixFilePermissions(d.resolve("m777"))));
                    assertEquals(4, Files.size(d.resolve("tr")), "the refused truncate left the file as it was");
                    assertEquals(1_000_000_000L, Files.getLastModifiedTime(d.resolve("nsdst")).toInstant().getEpochSecond(),
                            "times set by the guest reach the host");
                    assertEquals(1_100_000_000L, ((java.nio.file.attribute.FileTime) Files.getAttribute(d.resolve("trlink"), "lastModifiedTime",
                            java.nio.file.LinkOption.NOFOLLOW_LINKS)).toInstant().getEpochSecond(), "the symlink's own mtime");
                    assertEquals(0777, (Integer) Files.getAttribute(d.resolve("suid"), "unix:mode") & 07777, "setuid cleared by uid 1000's write");
                }
            }
            assertTrue(s.metric("bridgefs_write_bytes_total{path=\"9p\",export=\"share\"}") >= 3L * 48 * 65536);
            assertTrue(s.metric("bridgefs_cache_hits_total{path=\"9p\"}") > 0, "9P data went through the shared cache");
        }
    }
}
