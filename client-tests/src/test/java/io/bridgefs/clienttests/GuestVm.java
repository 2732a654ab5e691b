package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import java.util.zip.GZIPOutputStream;

/**
 * A real Linux guest under QEMU (TCG): Debian's generic kernel (fetched by
 * client-tests/scripts/fetch-guest-kernel.sh) with a busybox-static initramfs built here, holding the
 * kernel modules a test asks for (dependencies read from each module's .modinfo) and a test script.
 * The guest prints its results on the serial console and powers off.
 */
final class GuestVm {
    static final String UP = "BRIDGEFS-GUEST-UP";
    static final String EXIT = "BRIDGEFS-TEST-EXIT=";

    private GuestVm() {}

    static Path guestDir() {
        String env = System.getenv("BRIDGEFS_GUEST_DIR");
        Path d = env != null ? Path.of(env) : Path.of(System.getProperty("user.home"), ".cache", "bridgefs", "guest");
        if (!Files.isRegularFile(d.resolve("vmlinuz"))) {
            fail("no guest kernel in " + d + ": run client-tests/scripts/fetch-guest-kernel.sh (./test.sh does)");
        }
        return d;
    }

    static Path modulesDir(Path guest) throws IOException {
        try (Stream<Path> s = Files.list(guest.resolve("lib/modules"))) {
            return s.findFirst().orElseThrow(() -> new IOException("no lib/modules/<version> in " + guest));
        }
    }

    /** Module name (underscored) to .ko path, for every module the kernel package ships. */
    static Map<String, Path> moduleIndex(Path modDir) throws IOException {
        Map<String, Path> idx = new HashMap<>();
        try (Stream<Path> s = Files.walk(modDir)) {
            s.filter(p -> p.toString().endsWith(".ko")).forEach(p -> {
                String n = p.getFileName().toString();
                idx.put(n.substring(0, n.length() - 3).replace('-', '_'), p);
            });
        }
        return idx;
    }

    /** The {@code depends=} entry of a module's .modinfo section. */
    static List<String> depends(Path ko) throws IOException {
        byte[] b = Files.readAllBytes(ko);
        byte[] key = "depends=".getBytes(StandardCharsets.US_ASCII);
        outer:
        for (int i = 1; i + key.length < b.length; i++) {
            if (b[i - 1] != 0) continue;
            for (int k = 0; k < key.length; k++) if (b[i + k] != key[k]) continue outer;
            int j = i + key.length;
            int e = j;
            while (e < b.length && b[e] != 0) e++;
            String v = new String(b, j, e - j, StandardCharsets.US_ASCII);
            List<String> out = new ArrayList<>();
            for (String d : v.split(",")) if (!d.isBlank()) out.add(d.trim().replace('-', '_'));
            return out;
        }
        return List.of();
    }

    /** Modules in load order (dependencies first); names not shipped as modules are assumed built in. */
    static List<Path> resolve(Map<String, Path> idx, List<String> wanted) throws IOException {
        Set<String> done = new LinkedHashSet<>();
        for (String w : wanted) visit(idx, w.replace('-', '_'), done, new java.util.HashSet<>());
        List<Path> out = new ArrayList<>();
        for (String n : done) out.add(idx.get(n));
        return out;
    }

    private static void visit(Map<String, Path> idx, String name, Set<String> done, Set<String> onPath) throws IOException {
        if (done.contains(name) || !idx.containsKey(name) || !onPath.add(name)) return;
        for (String d : depends(idx.get(name))) visit(idx, d, done, onPath);
        done.add(name);
    }

    /** Builds a gzip'd newc initramfs with busybox, the modules and the test script. */
    static Path initramfs(Path work, List<String> modules, String testScript) throws IOException {
        return initramfs(work, modules, testScript, Map.of());
    }

    /** Compiles the static lock helper (client-tests/src/test/c/locktest.c) for the guest. */
    static Path lockHelper(Path work) throws Exception {
        return helper(work, "locktest");
    }

    /** A static binary for the guest, built from {@code src/test/c/NAME.c}. */
    static Path helper(Path work, String name) throws Exception {
        Tools.require("gcc");
        Path src = Path.of("src/test/c/" + name + ".c").toAbsolutePath();
        Path bin = work.resolve(name);
        Tools.run(Duration.ofSeconds(60), "gcc", "-static", "-O2", "-o", bin.toString(), src.toString())
                .ok("gcc -static " + name + ".c (needs libc6-dev)");
        return bin;
    }

    static Path initramfs(Path work, List<String> modules, String testScript, Map<String, Path> extraFiles) throws IOException {
        Path guest = guestDir();
        Path busybox = Path.of("/bin/busybox");
        assertTrue(Files.isExecutable(busybox), "busybox-static is not installed (./test.sh installs it)");
        List<Path> mods = resolve(moduleIndex(modulesDir(guest)), modules);
        StringBuilder order = new StringBuilder();
        Path out = work.resolve("initrd.gz");
        try (OutputStream os = new GZIPOutputStream(Files.newOutputStream(out))) {
            Cpio c = new Cpio(os);
            c.dir("bin");
            c.dir("modules");
            c.file("bin/busybox", Files.readAllBytes(busybox), 0755);
            for (Path m : mods) {
                String n = m.getFileName().toString();
                c.file("modules/" + n, Files.readAllBytes(m), 0644);
                order.append(n, 0, n.length() - 3).append('\n');
            }
            c.file("modules.order", order.toString().getBytes(StandardCharsets.UTF_8), 0644);
            c.file("test.sh", testScript.getBytes(StandardCharsets.UTF_8), 0755);
            for (Map.Entry<String, Path> e : extraFiles.entrySet()) c.file(e.getKey(), Files.readAllBytes(e.getValue()), 0755);
            c.file("init", INIT.getBytes(StandardCharsets.UTF_8), 0755);
            c.trailer();
        }
        return out;
    }

    /** Guest script lines that bring up QEMU's user network (-nic user): the host's loopback is 10.0.2.2. */
    static final String NETWORK_UP = """
            ip link set lo up
            ip link set eth0 up
            ip addr add 10.0.2.15/24 dev eth0
            ip route add default via 10.0.2.2
            """;

    static final String INIT = """
            #!/bin/busybox sh
            /bin/busybox --install -s /bin
            export PATH=/bin:/sbin
            mkdir -p /proc /sys /dev /mnt /tmp /sbin
            mount -t proc proc /proc
            mount -t sysfs sysfs /sys
            mount -t devtmpfs devtmpfs /dev
            for m in $(cat /modules.order); do insmod /modules/$m.ko 2>/dev/null || echo "insmod $m failed"; done
            echo BRIDGEFS-GUEST-UP
            sh /test.sh
            echo BRIDGEFS-TEST-EXIT=$?
            sync
            poweroff -f
            """;

    /** Boots the guest and returns what it printed on the serial console; fails if it did not finish. */
    static String boot(Path work, Path initrd, List<String> extraQemuArgs, Duration timeout) throws Exception {
        Tools.Result r = Tools.run(work, timeout, qemu(initrd, 512, extraQemuArgs));
        String console = r.out() + r.err();
        Files.writeString(work.resolve("console.log"), console);
        assertTrue(console.contains(UP), "the guest did not come up:\n" + console);
        int i = console.indexOf(EXIT);
        assertTrue(i >= 0, "the guest test script did not finish:\n" + console);
        return console;
    }

    /** The QEMU command line of a guest (TCG; -accel kvm hangs on these machines) with the given memory. */
    static List<String> qemu(Path initrd, int memMiB, List<String> extraQemuArgs) {
        Tools.require("qemu-system-x86_64");
        List<String> cmd = new ArrayList<>(List.of("qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", String.valueOf(memMiB),
                "-smp", "1", "-nographic", "-monitor", "none", "-no-reboot",
                "-kernel", guestDir().resolve("vmlinuz").toString(), "-initrd", initrd.toString(),
                "-append", "console=ttyS0 panic=-1 loglevel=3"));
        cmd.addAll(extraQemuArgs);
        return cmd;
    }

    static int exitCode(String console) {
        int i = console.indexOf(EXIT) + EXIT.length();
        int e = i;
        while (e < console.length() && Character.isDigit(console.charAt(e))) e++;
        return Integer.parseInt(console.substring(i, e));
    }

    /** Minimal writer of the newc cpio format the kernel unpacks. */
    private static final class Cpio {
        private final OutputStream out;
        private int ino = 1;
        private long written;

        Cpio(OutputStream out) { this.out = out; }

        void dir(String name) throws IOException { entry(name, 040755, new byte[0]); }

        void file(String name, byte[] data, int mode) throws IOException { entry(name, 0100000 | mode, data); }

        void trailer() throws IOException { entry("TRAILER!!!", 0, new byte[0]); }

        private void entry(String name, int mode, byte[] data) throws IOException {
            byte[] n = (name + "\0").getBytes(StandardCharsets.UTF_8);
            ByteArrayOutputStream h = new ByteArrayOutputStream();
            h.writeBytes("070701".getBytes(StandardCharsets.US_ASCII));
            long[] fields = {ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, n.length, 0};
            for (long f : fields) h.writeBytes(String.format("%08x", f).getBytes(StandardCharsets.US_ASCII));
            h.writeBytes(n);
            write(h.toByteArray());
            pad();
            write(data);
            pad();
        }

        private void write(byte[] b) throws IOException {
            out.write(b);
            written += b.length;
        }

        private void pad() throws IOException {
            while (written % 4 != 0) write(new byte[1]);
        }
    }
}
