package io.bridgefs.clienttests;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The reference experiment of DESIGN.md, as one command ({@code client-tests/experiment/run.sh}).
 *
 * <p>One data set (a copy of real files of this machine) is read three ways by the same busybox
 * utilities: HFS, on the host directly; GFS, in a Linux guest under QEMU that mounts an ext4 image of
 * the data set served by bridgefs over NBD ({@code -drive file=nbd://…}); MyFS, in a guest that mounts
 * the data set directory from bridgefs over 9P ({@code cache=none}). Every utility runs with the host
 * cache cold (host kernel caches and the bridgefs cache dropped) and then warm; the guest's own cache is
 * dropped before every run, so cold and warm differ only in the host cache. Then two guests at once,
 * one per path, read the same data, first with {@code --dedup shadow} (the duplicated reads are
 * counted) and then with {@code --dedup merge} (what sharing saves). GFS-bridged is GFS on a bridged
 * disk ({@code --nbd-export NAME=DIR,bridged}): an ext4 image bridgefs makes of the data set directory
 * itself, whose data blocks are the files' own pages; its two-guest run ("bridged", counted with
 * {@code --dedup shadow}) shows the pages shared by location, without hashing.
 *
 * <p>The guests drive themselves and report to a small HTTP control server here (reached at
 * 10.0.2.2 from QEMU's user network): {@code /cold} drops the host caches, {@code /begin} and
 * {@code /end} bracket a run so the server's counters are read around it.
 */
public final class ReferenceExperiment {
    static final List<String> UTILITIES = List.of("find", "du", "grep", "tar", "md5sum", "cp");
    static final List<String> PHASES = List.of("cold", "warm");
    static final String HFS = "HFS", GFS = "GFS", GFS_BRIDGED = "GFS-bridged", MYFS = "MyFS", MYFS_LOOSE = "MyFS-loose";
    /** The paths in the order they run; GFS-bridged and MyFS-loose (9P with the guest caching, cache=loose) go beyond the paper. */
    static final List<String> PATHS = List.of(HFS, GFS, GFS_BRIDGED, MYFS, MYFS_LOOSE);

    /** Whether a path's guest mounts an ext4 disk over NBD (GFS, GFS-bridged) rather than 9P. */
    static boolean block(String path) {
        return path.equals(GFS) || path.equals(GFS_BRIDGED);
    }

    /** What to run: data set size and source, where results and scratch files go, guest memory. */
    record Options(long datasetBytes, Path source, Path out, Path work, int guestMemMiB, long maxFileBytes) {
        /** The largest file copied into the data set: as given, or 1/256 of the data set (16 KiB to 8 MiB). */
        long fileCap() {
            return maxFileBytes > 0 ? maxFileBytes : Math.max(16 << 10, Math.min(8 << 20, datasetBytes / 256));
        }
    }

    /** One utility run on one path. Byte counts are deltas over the run; cache sizes are after it. */
    record Run(String path, String utility, String phase, double elapsedSeconds, long rchar,
               long nbdReadBytes, long p9ReadBytes, long nbdFillBytes, long p9FillBytes,
               long hostCacheBytes, long guestCachedBytes, long guestBuffersBytes,
               long duplicateFillBytes, long dedupSavedBytes, long nbdRequests, long p9Requests, int errors) {

        long memoryBytes() { return hostCacheBytes + guestCachedBytes + guestBuffersBytes; }

        static final String HEADER = "path,utility,phase,elapsed_s,rchar_bytes,nbd_read_bytes,9p_read_bytes,nbd_fill_bytes,"
                + "9p_fill_bytes,host_cache_bytes,guest_cached_bytes,guest_buffers_bytes,duplicate_fill_bytes,dedup_saved_bytes,nbd_requests,9p_requests,errors";

        String csv() {
            return String.join(",", path, utility, phase, String.format(Locale.ROOT, "%.2f", elapsedSeconds),
                    Long.toString(rchar), Long.toString(nbdReadBytes), Long.toString(p9ReadBytes), Long.toString(nbdFillBytes),
                    Long.toString(p9FillBytes), Long.toString(hostCacheBytes), Long.toString(guestCachedBytes),
                    Long.toString(guestBuffersBytes), Long.toString(duplicateFillBytes), Long.toString(dedupSavedBytes),
                    Long.toString(nbdRequests), Long.toString(p9Requests), Integer.toString(errors));
        }
    }

    /** One guest of the two-guests-at-once phase, with the server's counters when both were done. */
    record Together(String dedup, String path, double elapsedSeconds, long readBytes, long fillBytes,
                    long duplicateFillBytes, long serverCachedBytes, long residentBytes, long dedupSavedBytes,
                    long dedupPagesShared, long guestCachedBytes, long crossHitsFromOther) {

        static final String HEADER = "dedup,path,elapsed_s,read_bytes,fill_bytes,duplicate_fill_bytes,server_cached_bytes,"
                + "resident_bytes,dedup_saved_bytes,dedup_pages_shared,guest_cached_bytes,cross_path_hits";

        String csv() {
            return String.join(",", dedup, path, String.format(Locale.ROOT, "%.2f", elapsedSeconds), Long.toString(readBytes),
                    Long.toString(fillBytes), Long.toString(duplicateFillBytes), Long.toString(serverCachedBytes),
                    Long.toString(residentBytes), Long.toString(dedupSavedBytes), Long.toString(dedupPagesShared),
                    Long.toString(guestCachedBytes), Long.toString(crossHitsFromOther));
        }
    }

    /** What the experiment produced. */
    /**
     * What the experiment produced. {@code datasetRepeatedBytes}: pages of the data set whose bytes an
     * earlier page of it already holds (identical files, shared blocks): fills of those count as
     * duplicates on any path, so they are the floor of the bridged run's duplicated fills.
     */
    record Results(long datasetBytes, int datasetFiles, List<Run> runs, List<Together> together, Path out, long datasetRepeatedBytes) {}

    private final Options o;
    private final Path data;
    private final Path image;
    private final boolean root;
    private final HttpClient http = HttpClient.newHttpClient();
    private final List<Run> runs = Collections.synchronizedList(new ArrayList<>());
    private final List<Together> together = Collections.synchronizedList(new ArrayList<>());
    private int done;
    private int total;
    private final long started = System.nanoTime();

    private ReferenceExperiment(Options o) {
        this.o = o;
        this.data = o.work().resolve("data");
        this.image = o.work().resolve("data.ext4");
        this.root = "root".equals(System.getProperty("user.name"));
    }

    public static void main(String[] args) throws Exception {
        long size = 256L << 20;
        Path source = Path.of("/usr/share");
        Path out = Path.of("experiment-results");
        Path work = null;
        int mem = 1536;
        long maxFile = 0;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String v = i + 1 < args.length ? args[i + 1] : null;
            switch (a) {
                case "--size" -> { size = io.bridgefs.server.config.Sizes.parse(v); i++; }
                case "--source" -> { source = Path.of(v); i++; }
                case "--out" -> { out = Path.of(v); i++; }
                case "--work" -> { work = Path.of(v); i++; }
                case "--guest-memory" -> { mem = Integer.parseInt(v); i++; }
                case "--max-file" -> { maxFile = io.bridgefs.server.config.Sizes.parse(v); i++; }
                default -> {
                    System.err.println("usage: experiment [--size 256m] [--source /usr/share] [--out DIR] [--work DIR] [--guest-memory MIB] [--max-file SIZE]");
                    System.exit(2);
                }
            }
        }
        boolean temporary = work == null;
        if (temporary) {
            work = Files.createTempDirectory(Path.of("/var/tmp"), "bridgefs-experiment");
            Path w = work;
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {      // Ctrl-C: stop the guests and servers, drop the copies
                ProcessHandle.current().descendants().forEach(ProcessHandle::destroy);
                try {
                    Thread.sleep(2000);
                    deleteTree(w);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                } catch (IOException ignored) {
                    // best effort
                }
            }));
        }
        Results r;
        try {
            r = run(new Options(size, source, out.toAbsolutePath(), work.toAbsolutePath(), mem, maxFile));
        } finally {
            if (temporary) deleteTree(work);
        }
        System.out.println("experiment: results in " + r.out() + " (report.md, runs.csv, together.csv, *.png)");
        System.exit(0);
    }

    /** Runs the whole experiment and writes the results folder. */
    static Results run(Options o) throws Exception {
        return new ReferenceExperiment(o).runAll();
    }

    private Results runAll() throws Exception {
        Tools.require("busybox", "mke2fs", "qemu-system-x86_64", "fincore");
        Files.createDirectories(o.out());
        Files.createDirectories(o.work());
        int files = copyDataset();
        long bytes = sizeOf(data);
        buildImage(bytes, files);
        total = PATHS.size() * UTILITIES.size() * PHASES.size() + 6;
        progress("data set: %d files, %s, from %s; ext4 image %s", files, human(bytes), o.source(), human(Files.size(image)));
        runHost();
        try (Control ctl = new Control()) {
            try (BridgefsProcess server = startServer("shadow")) {
                ctl.server = server;
                runGuest(ctl, GFS);
                runGuest(ctl, GFS_BRIDGED);
                runGuest(ctl, MYFS);
                runGuest(ctl, MYFS_LOOSE);
            }
            for (String dedup : List.of("shadow", "merge", "bridged")) {
                try (BridgefsProcess server = startServer(dedup.equals("bridged") ? "shadow" : dedup)) {
                    ctl.server = server;
                    runTogether(ctl, dedup);
                }
            }
        }
        writeCsv();
        plot();
        Results r = new Results(bytes, files, List.copyOf(runs), List.copyOf(together), o.out(), repeatedPageBytes(data));
        Files.writeString(o.out().resolve("report.md"), ExperimentReport.render(r, o, commandLine()));
        progress("report written: %s", o.out().resolve("report.md"));
        return r;
    }

    // ---- the data set ----

    /** Copies regular files (each at most {@link Options#fileCap()}) from the source, in path order, until the size is reached. */
    private int copyDataset() throws IOException {
        if (Files.exists(data)) deleteTree(data);
        Files.createDirectories(data);
        List<Path> candidates;
        try (Stream<Path> s = Files.walk(o.source())) {
            candidates = s.filter(p -> Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS) && Files.isReadable(p))
                    .sorted().toList();
        }
        long have = 0;
        int n = 0;
        long cap = o.fileCap();     // many files, as in a real tree
        for (Path p : candidates) {
            if (have >= o.datasetBytes()) break;
            long size = Files.size(p);
            if (size > cap || have + size > o.datasetBytes() + cap) continue;
            Path to = data.resolve(o.source().relativize(p).toString());
            Files.createDirectories(to.getParent());
            try {
                Files.copy(p, to, StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException e) {
                continue;   // vanished or unreadable: skip it
            }
            have += size;
            n++;
        }
        try (Stream<Path> s = Files.walk(data)) {
            for (Path p : s.toList()) {
                p.toFile().setReadable(true, false);
                if (Files.isDirectory(p)) p.toFile().setExecutable(true, false);
            }
        }
        data.getParent().toFile().setExecutable(true, false);
        return n;
    }

    private void buildImage(long bytes, int files) throws Exception {
        Files.deleteIfExists(image);
        long dirs;
        try (Stream<Path> s = Files.walk(data)) {
            dirs = s.filter(Files::isDirectory).count();
        }
        long blocks = (bytes + 4095) / 4096 + files + dirs;                 // data, rounded up per file
        long kib = (long) (blocks * 4 * 1.25) + 64 * 1024;                   // metadata, journal, slack
        Tools.run(Duration.ofMinutes(10), "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096",
                "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", data.toString(), image.toString(), kib + "k").ok("mke2fs -d");
    }

    /** Bytes of 4 KiB file pages (the last one zero-padded; all-zero pages aside) whose bytes an earlier page repeats. */
    static long repeatedPageBytes(Path dir) throws IOException {
        java.util.Set<java.nio.ByteBuffer> seen = new java.util.HashSet<>();
        byte[] zero = new byte[4096];
        long repeated = 0;
        List<Path> files;
        try (Stream<Path> s = Files.walk(dir)) {
            files = s.filter(p -> Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)).sorted().toList();
        }
        for (Path f : files) {
            byte[] b = Files.readAllBytes(f);
            for (int at = 0; at < b.length; at += 4096) {
                byte[] page = java.util.Arrays.copyOf(java.util.Arrays.copyOfRange(b, at, Math.min(b.length, at + 4096)), 4096);
                if (java.util.Arrays.equals(page, zero)) continue;
                if (!seen.add(java.nio.ByteBuffer.wrap(page))) repeated += 4096;
            }
        }
        return repeated;
    }

    // ---- HFS: the utilities on the host ----

    private void runHost() throws Exception {
        Path scratch = Files.createTempDirectory(Path.of("/dev/shm"), "bridgefs-experiment");
        try {
            for (String u : UTILITIES) {
                for (String phase : PHASES) {
                    if (phase.equals("cold")) dropHostCaches();
                    String cmd = command(u, data.toString(), scratch.toString()) + "; cat /proc/$$/io > " + scratch + "/io";
                    long t0 = System.nanoTime();
                    Tools.Result r = Tools.run(Duration.ofMinutes(30), "sh", "-c", cmd);
                    double elapsed = (System.nanoTime() - t0) / 1e9;
                    if (r.exit() != 0 && !u.equals("grep")) throw new IOException(u + " on the host failed: " + r.err());
                    long rchar = ioField(Files.readString(scratch.resolve("io")), "rchar");
                    deleteTree(scratch.resolve("copy"));
                    int errors = r.err().isBlank() ? 0 : r.err().strip().split("\n").length;
                    Run run = new Run(HFS, u, phase, elapsed, rchar, 0, 0, 0, 0, hostPageCacheOf(data), 0, 0, 0, 0, 0, 0, errors);
                    runs.add(run);
                    report(run);
                }
            }
        } finally {
            deleteTree(scratch);
        }
    }

    /** Bytes of the data set's files in the host kernel's page cache (fincore). */
    private long hostPageCacheOf(Path dir) throws Exception {
        List<String> files;
        try (Stream<Path> s = Files.walk(dir)) {
            files = s.filter(Files::isRegularFile).map(Path::toString).toList();
        }
        long sum = 0;
        for (int i = 0; i < files.size(); i += 500) {
            List<String> cmd = new ArrayList<>(List.of("fincore", "--bytes", "--noheadings", "--output", "RES"));
            cmd.addAll(files.subList(i, Math.min(files.size(), i + 500)));
            for (String line : Tools.run(null, Duration.ofMinutes(5), cmd).out().split("\n")) {
                if (!line.isBlank()) sum += Long.parseLong(line.trim());
            }
        }
        return sum;
    }

    private void dropHostCaches() throws Exception {
        Tools.run(Duration.ofMinutes(2), "sync");
        if (root) {
            Files.writeString(Path.of("/proc/sys/vm/drop_caches"), "3");
        } else {
            progress("WARNING: not root, so the host kernel's caches cannot be dropped: HFS cold runs are not cold");
        }
    }

    // ---- the guests ----

    private BridgefsProcess startServer(String dedup) throws Exception {
        long cache = Math.max(256L << 20, 3 * Files.size(image) + (128L << 20));
        return BridgefsProcess.start(o.work(), "--dedup", dedup, "--cache-size", (cache >> 20) + "m",
                "--nbd-export", "gfs=" + image + ",ro", "--nbd-export", "gfsb=" + data + ",bridged", "--9p-listen", "127.0.0.1:" + BridgefsProcess.freePort(),
                "--9p-export", "myfs=" + data + ",ro", "--writeback-interval", "0");
    }

    private List<String> qemuArgs(BridgefsProcess server, String path) {
        List<String> a = new ArrayList<>(List.of("-nic", "user,model=virtio-net-pci"));
        if (block(path)) {
            a.addAll(List.of("-drive", "file=" + server.uri(path.equals(GFS) ? "gfs" : "gfsb") + ",format=raw,if=virtio,readonly=on"));
        }
        return a;
    }

    static String mountCommand(String path, int p9Port) {
        return block(path)
                ? "mount -t ext4 -o ro /dev/vda /data"
                : "mount -t 9p -o trans=tcp,port=" + p9Port + ",version=9p2000.L,aname=myfs,msize=262144,cache="
                        + (path.equals(MYFS_LOOSE) ? "loose" : "none") + ",ro 10.0.2.2 /data";
    }

    /** The guest's script: network up, mount, then each utility cold and warm, reporting to the control server. */
    private String guestScript(String path, int p9Port, int ctlPort, boolean together) {
        StringBuilder s = new StringBuilder(GuestVm.NETWORK_UP).append("""
                CTL=http://10.0.2.2:%d
                ctl() { wget -q -O - "$CTL/$1" || echo "CONTROL-FAILED $1"; }
                mem() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
                mkdir -p /data /scratch
                mount -t tmpfs -o size=90%% tmpfs /scratch
                %s || { echo MOUNT-FAILED; exit 1; }
                run() {
                  util=$1; phase=$2; cmd=$3
                  [ "$phase" = cold ] && ctl "cold?path=%s" > /dev/null
                  sync; echo 3 > /proc/sys/vm/drop_caches
                  c0=$(mem Cached); b0=$(mem Buffers)
                  ctl "begin?path=%s&util=$util&phase=$phase" > /dev/null
                  t0=$(cut -d' ' -f1 /proc/uptime)
                  sh -c "$cmd; cat /proc/\\$\\$/io > /tmp/io" > /dev/null 2> /tmp/err
                  t1=$(cut -d' ' -f1 /proc/uptime)
                  errors=$(wc -l < /tmp/err); head -n 3 /tmp/err | sed "s/^/UTILITY-ERROR $util: /"
                  rm -rf /scratch/copy
                  c1=$(mem Cached); b1=$(mem Buffers)
                  rchar=$(awk '$1 == "rchar:" { print $2 }' /tmp/io)
                  ctl "end?path=%s&util=$util&phase=$phase&t0=$t0&t1=$t1&cached_kb=$((c1 - c0))&buffers_kb=$((b1 - b0))&rchar=$rchar&errors=$errors" > /dev/null
                  echo "RUN-DONE $util $phase"
                }
                """.formatted(ctlPort, mountCommand(path, p9Port), path, path, path));
        if (together) {
            s.append("while [ \"$(ctl 'ready?path=").append(path).append("')\" != go ]; do sleep 0.2; done\n");
            s.append("run tar together \"").append(command("tar", "/data", "/scratch")).append("\"\n");
        } else {
            for (String u : UTILITIES) {
                for (String phase : PHASES) s.append("run ").append(u).append(' ').append(phase).append(" \"").append(command(u, "/data", "/scratch")).append("\"\n");
            }
        }
        s.append("umount /data\n");
        return s.toString();
    }

    private Process bootGuest(Control ctl, String path, boolean together, String tag) throws Exception {
        Path dir = Files.createDirectories(o.work().resolve("guest-" + tag));
        Path initrd = GuestVm.initramfs(dir, List.of("virtio_pci", "virtio_net", "virtio_blk", "9pnet_fd", "9p", "ext4", "crc32c_generic"),
                guestScript(path, ctl.server.p9Port(), ctl.port(), together));
        List<String> cmd = GuestVm.qemu(initrd, o.guestMemMiB(), qemuArgs(ctl.server, path));
        return new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(o.out().resolve("console-" + tag + ".log").toFile()).start();
    }

    private void awaitGuest(Process p, String tag) throws Exception {
        if (!p.waitFor(3, TimeUnit.HOURS)) {
            p.destroyForcibly();
            throw new IOException("guest " + tag + " did not finish in 3 hours");
        }
        String console = Files.readString(o.out().resolve("console-" + tag + ".log"), StandardCharsets.ISO_8859_1);
        if (!console.contains(GuestVm.EXIT + "0")) {
            throw new IOException("guest " + tag + " failed; its console (" + o.out().resolve("console-" + tag + ".log") + "):\n"
                    + console.substring(Math.max(0, console.length() - 3000)));
        }
    }

    private void runGuest(Control ctl, String path) throws Exception {
        progress("%s: booting a guest (QEMU TCG, %d MiB) that mounts the data set %s", path, o.guestMemMiB(),
                path.equals(GFS) ? "as ext4 on /dev/vda (NBD, an mke2fs -d image)" : path.equals(GFS_BRIDGED) ? "as ext4 on /dev/vda (NBD, the bridged disk of the directory)" : path.equals(MYFS) ? "over 9P (cache=none)" : "over 9P (cache=loose)");
        String tag = path.toLowerCase(Locale.ROOT);
        awaitGuest(bootGuest(ctl, path, false, tag), tag);
    }

    private void runTogether(Control ctl, String dedup) throws Exception {
        String blockPath = dedup.equals("bridged") ? GFS_BRIDGED : GFS;
        progress("two guests at once (%s): %s and MyFS read the whole data set with tar", dedup.equals("bridged") ? "--dedup shadow" : "--dedup " + dedup, blockPath);
        ctl.ready.clear();
        ctl.together.clear();
        Process gfs = bootGuest(ctl, blockPath, true, "together-" + dedup + "-gfs");
        Process myfs = bootGuest(ctl, MYFS, true, "together-" + dedup + "-myfs");
        awaitGuest(gfs, "together-" + dedup + "-gfs");
        awaitGuest(myfs, "together-" + dedup + "-myfs");
        Map<String, Double> m = ctl.metrics();
        for (String path : List.of(blockPath, MYFS)) {
            Map<String, String> q = ctl.together.get(path);
            String p = label(path);
            String other = p.equals("nbd") ? "9p" : "nbd";
            together.add(new Together(dedup, path, Double.parseDouble(q.get("t1")) - Double.parseDouble(q.get("t0")),
                    sum(m, "bridgefs_read_bytes_total{path=\"" + p + "\""), (long) get(m, "bridgefs_cache_fill_bytes_total{path=\"" + p + "\"}"),
                    (long) get(m, "bridgefs_duplicate_fill_bytes_total{path=\"" + p + "\"}"), (long) get(m, "bridgefs_cached_bytes"),
                    (long) get(m, "bridgefs_resident_pages") * 4096, (long) get(m, "bridgefs_dedup_saved_bytes"),
                    (long) get(m, "bridgefs_dedup_pages_shared"), Long.parseLong(q.get("cached_kb")) * 1024,
                    (long) get(m, "bridgefs_cross_path_hits_total{from=\"" + other + "\",to=\"" + p + "\"}")));
        }
        done += 2;
        progress("  %s: server cache %s for %s of resident pages; duplicated reads nbd %s, 9p %s; %s %s",
                dedup.equals("bridged") ? "bridged disk (--dedup shadow)" : "--dedup " + dedup, human((long) get(m, "bridgefs_cached_bytes")), human((long) get(m, "bridgefs_resident_pages") * 4096),
                human((long) get(m, "bridgefs_duplicate_fill_bytes_total{path=\"nbd\"}")),
                human((long) get(m, "bridgefs_duplicate_fill_bytes_total{path=\"9p\"}")),
                dedup.equals("merge") ? "merged away" : "merging would save", human((long) get(m, "bridgefs_dedup_saved_bytes")));
        if (dedup.equals("bridged")) {
            progress("  bridged: hits on pages the other path read: nbd %d, 9p %d", (long) get(m, "bridgefs_cross_path_hits_total{from=\"9p\",to=\"nbd\"}"),
                    (long) get(m, "bridgefs_cross_path_hits_total{from=\"nbd\",to=\"9p\"}"));
        }
    }

    static String label(String path) {
        return block(path) ? "nbd" : "9p";
    }

    /** The busybox command line of a utility over directory {@code d}, with scratch space {@code s}. */
    static String command(String utility, String d, String s) {
        return switch (utility) {
            case "find" -> "busybox find " + d + " > /dev/null";
            case "du" -> "busybox du -s " + d + " > /dev/null";
            case "grep" -> "busybox grep -r -c bridgefs-no-such-text " + d + " > /dev/null";
            case "tar" -> "busybox tar -c -f /dev/null -C " + d + " .";     // busybox tar reads every file even so
            case "md5sum" -> "busybox find " + d + " -type f -exec busybox md5sum {} + > /dev/null";
            case "cp" -> "busybox cp -r " + d + " " + s + "/copy";
            default -> throw new IllegalArgumentException(utility);
        };
    }

    // ---- the control server the guests talk to ----

    private final class Control implements AutoCloseable {
        final HttpServer http;
        final java.util.concurrent.ExecutorService pool = java.util.concurrent.Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "experiment-control");
            t.setDaemon(true);
            return t;
        });
        volatile BridgefsProcess server;
        final Map<String, Map<String, Double>> before = new ConcurrentHashMap<>();
        final Set<String> ready = ConcurrentHashMap.newKeySet();
        final Map<String, Map<String, String>> together = new ConcurrentHashMap<>();

        Control() throws IOException {
            http = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 16);
            http.setExecutor(pool);
            http.createContext("/", this::handle);
            http.start();
        }

        int port() { return http.getAddress().getPort(); }

        Map<String, Double> metrics() throws IOException, InterruptedException {
            return parseMetrics(server.http("/metrics"));
        }

        private void handle(HttpExchange x) throws IOException {
            String body = "ok\n";
            int status = 200;
            try {
                Map<String, String> q = query(x.getRequestURI());
                switch (x.getRequestURI().getPath()) {
                    case "/cold" -> {
                        dropHostCaches();
                        HttpResponse<String> r = ReferenceExperiment.this.http.send(HttpRequest.newBuilder(
                                        URI.create("http://127.0.0.1:" + server.metricsPort + "/drop-caches"))
                                .POST(HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
                        if (r.statusCode() != 200) throw new IOException("drop-caches: " + r.statusCode());
                    }
                    case "/begin" -> before.put(q.get("path"), metrics());
                    case "/end" -> end(q);
                    case "/ready" -> {
                        ready.add(q.get("path"));
                        body = ready.size() >= 2 ? "go" : "wait";
                    }
                    default -> {
                        status = 404;
                        body = "not found\n";
                    }
                }
            } catch (Exception e) {
                status = 500;
                body = e + "\n";
                progress("control request %s failed: %s", x.getRequestURI(), e);
            }
            byte[] b = body.getBytes(StandardCharsets.UTF_8);
            x.sendResponseHeaders(status, b.length);
            try (OutputStream os = x.getResponseBody()) {
                os.write(b);
            }
        }

        private void end(Map<String, String> q) throws Exception {
            String path = q.get("path");
            if (q.get("phase").equals("together")) {
                together.put(path, q);
                return;
            }
            Map<String, Double> b = before.get(path);
            Map<String, Double> a = metrics();
            Run r = new Run(path, q.get("util"), q.get("phase"), Double.parseDouble(q.get("t1")) - Double.parseDouble(q.get("t0")),
                    Long.parseLong(q.getOrDefault("rchar", "0")),
                    sum(a, "bridgefs_read_bytes_total{path=\"nbd\"") - sum(b, "bridgefs_read_bytes_total{path=\"nbd\""),
                    sum(a, "bridgefs_read_bytes_total{path=\"9p\"") - sum(b, "bridgefs_read_bytes_total{path=\"9p\""),
                    delta(a, b, "bridgefs_cache_fill_bytes_total{path=\"nbd\"}"), delta(a, b, "bridgefs_cache_fill_bytes_total{path=\"9p\"}"),
                    (long) get(a, "bridgefs_cached_bytes"), Long.parseLong(q.get("cached_kb")) * 1024, Long.parseLong(q.get("buffers_kb")) * 1024,
                    sum(a, "bridgefs_duplicate_fill_bytes_total") - sum(b, "bridgefs_duplicate_fill_bytes_total"),
                    (long) get(a, "bridgefs_dedup_saved_bytes"), nbdRequests(a) - nbdRequests(b),
                    sum(a, "bridgefs_9p_requests_total") - sum(b, "bridgefs_9p_requests_total"),
                    Integer.parseInt(q.getOrDefault("errors", "0")));
            runs.add(r);
            report(r);
        }

        @Override
        public void close() {
            http.stop(0);
            pool.shutdownNow();
        }
    }

    /** NBD requests of every kind (each op counter of the nbd path, over exports). */
    static long nbdRequests(Map<String, Double> m) {
        long n = 0;
        for (String op : List.of("read", "write", "flush", "trim", "write_zeroes")) n += sum(m, "bridgefs_" + op + "_ops_total{path=\"nbd\"");
        return n;
    }

    static long delta(Map<String, Double> after, Map<String, Double> before, String key) {
        return (long) (get(after, key) - get(before, key));
    }

    static Map<String, String> query(URI u) {
        Map<String, String> q = new LinkedHashMap<>();
        String raw = u.getRawQuery();
        if (raw == null) return q;
        for (String kv : raw.split("&")) {
            int eq = kv.indexOf('=');
            if (eq > 0) q.put(kv.substring(0, eq), java.net.URLDecoder.decode(kv.substring(eq + 1), StandardCharsets.UTF_8));
        }
        return q;
    }

    // ---- output ----

    private synchronized void report(Run r) {
        done++;
        String requests = r.path().equals(HFS) ? "" : String.format(Locale.ROOT, "  %d %s requests", block(r.path()) ? r.nbdRequests() : r.p9Requests(),
                block(r.path()) ? "NBD" : "9P");
        progress("%-5s %-6s %-4s %7.2f s  read %9s  host cache %9s  guest cache %9s%s%s", r.path(), r.utility(), r.phase(),
                r.elapsedSeconds(), human(r.rchar()), human(r.hostCacheBytes()), human(r.guestCachedBytes() + r.guestBuffersBytes()), requests,
                r.errors() > 0 ? "  ERRORS: " + r.errors() + " lines on stderr" : "");
    }

    private synchronized void progress(String fmt, Object... args) {
        long s = (System.nanoTime() - started) / 1_000_000_000L;
        String pos = total > 0 ? String.format(Locale.ROOT, "[%d/%d %d:%02d] ", done, total, s / 60, s % 60) : "";
        System.out.println("experiment: " + pos + String.format(Locale.ROOT, fmt, args));
        System.out.flush();
    }

    private void writeCsv() throws IOException {
        List<String> lines = new ArrayList<>(List.of(Run.HEADER));
        for (Run r : runs) lines.add(r.csv());
        Files.write(o.out().resolve("runs.csv"), lines);
        List<String> t = new ArrayList<>(List.of(Together.HEADER));
        for (Together x : together) t.add(x.csv());
        Files.write(o.out().resolve("together.csv"), t);
    }

    private void plot() throws Exception {
        Path script = Path.of(System.getProperty("bridgefs.experiment.plot", "experiment/plot.py")).toAbsolutePath();
        Tools.Result r = Tools.run(Duration.ofMinutes(5), "/usr/bin/python3", script.toString(), o.out().toString());
        r.ok("plot.py (needs Debian's python3-matplotlib)");
        progress("figures: %s", r.out().trim().replace('\n', ' '));
    }

    private String commandLine() {
        return System.getProperty("bridgefs.experiment.command",
                "client-tests/experiment/run.sh --size " + (o.datasetBytes() >> 20) + "m --source " + o.source());
    }

    // ---- small helpers ----

    static long ioField(String io, String field) {
        for (String line : io.split("\n")) {
            if (line.startsWith(field + ":")) return Long.parseLong(line.substring(field.length() + 1).trim());
        }
        return 0;
    }

    static double get(Map<String, Double> m, String key) {
        Double v = m.get(key);
        return v == null ? 0 : v;
    }

    /** Sum of every sample whose name and labels start with {@code prefix} (e.g. over exports). */
    static long sum(Map<String, Double> m, String prefix) {
        double s = 0;
        for (Map.Entry<String, Double> e : m.entrySet()) if (e.getKey().startsWith(prefix)) s += e.getValue();
        return (long) s;
    }

    static Map<String, Double> parseMetrics(String text) {
        Map<String, Double> m = new HashMap<>();
        for (String line : text.split("\n")) {
            if (line.startsWith("#") || line.isBlank()) continue;
            int sp = line.lastIndexOf(' ');
            try {
                m.put(line.substring(0, sp), Double.parseDouble(line.substring(sp + 1)));
            } catch (NumberFormatException ignored) {
                // not a sample
            }
        }
        return m;
    }

    static String human(long bytes) {
        return io.bridgefs.server.config.Sizes.human(bytes);
    }

    private static long sizeOf(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
        }
    }

    /**
     * Deletes a tree, also while something else deletes it (on Ctrl-C the shutdown hook and the main
     * thread's own clean-up both do): entries that vanish meanwhile are skipped, not an error.
     */
    static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
        Files.walkFileTree(p, new java.nio.file.SimpleFileVisitor<>() {
            @Override
            public java.nio.file.FileVisitResult visitFile(Path f, java.nio.file.attribute.BasicFileAttributes a) throws IOException {
                Files.deleteIfExists(f);
                return java.nio.file.FileVisitResult.CONTINUE;
            }

            @Override
            public java.nio.file.FileVisitResult visitFileFailed(Path f, IOException e) throws IOException {
                if (e instanceof java.nio.file.NoSuchFileException) return java.nio.file.FileVisitResult.CONTINUE;
                throw e;
            }

            @Override
            public java.nio.file.FileVisitResult postVisitDirectory(Path d, IOException e) throws IOException {
                if (e != null && !(e instanceof java.nio.file.NoSuchFileException)) throw e;
                Files.deleteIfExists(d);
                return java.nio.file.FileVisitResult.CONTINUE;
            }
        });
    }
}
