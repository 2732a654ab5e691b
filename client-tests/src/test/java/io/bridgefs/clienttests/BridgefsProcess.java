package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** The real server, run from its jar as users run it ({@code java -jar bridgefs.jar serve ...}). */
final class BridgefsProcess implements AutoCloseable {
    final Process process;
    final int nbdPort;
    final int metricsPort;
    final Path log;
    final StringBuilder stdout = new StringBuilder();
    int p9Port = 5640;

    private BridgefsProcess(Process process, int nbdPort, int metricsPort, Path log) {
        this.process = process;
        this.nbdPort = nbdPort;
        this.metricsPort = metricsPort;
        this.log = log;
    }

    static Path jar() {
        Path jar = Path.of(System.getProperty("bridgefs.jar", "../server/target/bridgefs.jar")).toAbsolutePath().normalize();
        assertTrue(Files.isRegularFile(jar), "server jar not built: " + jar + " (run mvn verify from the top)");
        return jar;
    }

    /**
     * A loopback port free now, below the kernel's ephemeral range (32768 and up here): a port the
     * kernel picked for us (bind to 0) comes from that range, and between our check and the server's bind
     * any outgoing connection on the machine could take it as its local port (CI saw a server fail to
     * start with EADDRINUSE that way). Ports are handed out in turn from a random start, never twice.
     */
    static int freePort() throws IOException {
        while (true) {
            int port = NEXT_PORT.getAndIncrement();
            if (port >= 32000) throw new IOException("no free loopback port left below the ephemeral range");
            try (ServerSocket s = new ServerSocket()) {
                s.setReuseAddress(false);
                s.bind(new java.net.InetSocketAddress(java.net.InetAddress.getLoopbackAddress(), port), 1);
                return port;
            } catch (java.net.BindException e) {
                // in use: the next one
            }
        }
    }

    private static final java.util.concurrent.atomic.AtomicInteger NEXT_PORT =
            new java.util.concurrent.atomic.AtomicInteger(20000 + new java.util.Random().nextInt(6000));

    /** As a user runs it: no JVM memory flags, so the server sizes its JVM from --cache-size itself. */
    static List<String> command(String... args) {
        return command(List.of(), jar(), args);
    }

    /** The command line run under {@code prefix} (e.g. setpriv to another user) with the jar at {@code jar}. */
    static List<String> command(List<String> prefix, Path jar, String... args) {
        // Netty's paranoid leak detector: every buffer tracked; stop() fails the test on any leak it logged
        List<String> cmd = new ArrayList<>(prefix);
        cmd.addAll(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Dio.netty.leakDetection.level=paranoid", "-jar", jar.toString()));
        cmd.addAll(List.of(args));
        return cmd;
    }

    /**
     * As an ordinary user: the jar copied into {@code dir} (which every user may read), started under
     * {@code setpriv} as {@code uid}:{@code gid} with no supplementary groups.
     */
    static BridgefsProcess startAsUser(Path dir, int uid, int gid, String... args) throws IOException, InterruptedException {
        Path jar = dir.resolve("bridgefs.jar");
        if (!Files.exists(jar)) Files.copy(jar(), jar);
        return start(List.of("setpriv", "--reuid=" + uid, "--regid=" + gid, "--clear-groups", "--"), jar, dir, args);
    }

    /** Starts {@code serve} with the given extra arguments on free loopback ports; waits until it serves. */
    static BridgefsProcess start(Path dir, String... args) throws IOException, InterruptedException {
        return start(List.of(), jar(), dir, args);
    }

    static BridgefsProcess start(List<String> prefix, Path jar, Path dir, String... args) throws IOException, InterruptedException {
        int nbd = freePort();
        int metrics = freePort();
        List<String> a = new ArrayList<>(List.of("serve", "--nbd-listen", "127.0.0.1:" + nbd, "--metrics-listen", "127.0.0.1:" + metrics));
        a.addAll(List.of(args));
        Path log = dir.resolve("bridgefs-" + nbd + ".log");
        Process p = new ProcessBuilder(command(prefix, jar, a.toArray(String[]::new))).directory(dir.toFile())
                .redirectError(log.toFile()).start();
        BridgefsProcess b = new BridgefsProcess(p, nbd, metrics, log);
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals("--9p-listen")) b.p9Port = Integer.parseInt(args[i + 1].substring(args[i + 1].lastIndexOf(':') + 1));
        }
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        Thread reader = new Thread(() -> {
            try {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (b.stdout) {
                        b.stdout.append(line).append('\n');
                        b.stdout.notifyAll();
                    }
                }
            } catch (IOException ignored) {
                // process ended
            }
        });
        reader.setDaemon(true);
        reader.start();
        long deadline = System.currentTimeMillis() + 30_000;
        synchronized (b.stdout) {
            while (!b.stdout.toString().contains("Stop with Ctrl-C")) {
                if (!p.isAlive()) fail("bridgefs exited with " + p.exitValue() + " at start:\n" + Files.readString(log));
                if (System.currentTimeMillis() > deadline) fail("bridgefs did not start in 30 s:\n" + Files.readString(log));
                b.stdout.wait(200);
            }
        }
        return b;
    }

    /** The 9P port, from the --9p-listen argument the test passed (or the default). */
    int p9Port() {
        return p9Port;
    }

    String uri(String export) {
        return "nbd://127.0.0.1:" + nbdPort + "/" + export;
    }

    /** One client for every request: each new HttpClient would keep a connection of its own open on the server. */
    private static final HttpClient HTTP = HttpClient.newHttpClient();

    String http(String path) throws IOException, InterruptedException {
        HttpResponse<String> r = HTTP.send(
                HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + metricsPort + path)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode());
        return r.body();
    }

    /** A counter's value from /metrics, e.g. {@code bridgefs_write_ops_total{path="nbd",export="disk"}}. */
    long metric(String nameAndLabels) throws IOException, InterruptedException {
        return (long) value(nameAndLabels);
    }

    /**
     * A gauge's value once it reads zero, or after 5 s: what the server gives back once it has seen a
     * client go (its close is handled on the connection's event loop, after the client's own close returns).
     */
    long awaitZero(String nameAndLabels) throws IOException, InterruptedException {
        long v = metric(nameAndLabels);
        for (int i = 0; i < 50 && v != 0; i++) {
            Thread.sleep(100);
            v = metric(nameAndLabels);
        }
        return v;
    }

    /** A sample's value from /metrics as it is, e.g. a latency quantile in seconds. */
    double value(String nameAndLabels) throws IOException, InterruptedException {
        for (String line : http("/metrics").split("\n")) {
            if (line.startsWith(nameAndLabels + " ")) return Double.parseDouble(line.substring(nameAndLabels.length() + 1));
        }
        fail("metric " + nameAndLabels + " not found in /metrics");
        return -1;
    }

    /**
     * SIGTERM, then the exit status. Fails if the server logged a leaked buffer, or if, once every client
     * has gone, fids, pinned pages or request memory do not return to nothing (checked for every test
     * that stops the server after closing its clients).
     */
    int stop() throws InterruptedException, IOException {
        if (process.isAlive()) checkIdle();
        process.destroy();
        if (!process.waitFor(60, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            fail("bridgefs did not stop within 60 s of SIGTERM");
        }
        String log = log();
        assertFalse(log.contains("LEAK:"), "the server leaked buffers:\n" + log);
        return process.exitValue();
    }

    private void checkIdle() throws InterruptedException, IOException {
        String held = "";
        for (int i = 0; i < 50; i++) {
            String m;
            try {
                m = http("/metrics");
            } catch (IOException | AssertionError e) {
                return;                        // no metrics listener (or it is gone): nothing to check
            }
            if (value(m, "bridgefs_connections{path=\"nbd\"}") + value(m, "bridgefs_connections{path=\"9p\"}") > 0) return;
            held = "fids " + value(m, "bridgefs_9p_fids") + ", pinned pages " + value(m, "bridgefs_pinned_pages")
                    + ", request memory " + value(m, "bridgefs_request_memory_bytes");
            if (held.equals("fids 0, pinned pages 0, request memory 0")) return;
            Thread.sleep(100);
        }
        fail("with no client left the server still holds " + held);
    }

    private static long value(String metrics, String nameAndLabels) {
        for (String line : metrics.split("\n")) {
            if (line.startsWith(nameAndLabels + " ")) return (long) Double.parseDouble(line.substring(nameAndLabels.length() + 1));
        }
        return 0;
    }

    /** This JVM's nice value (the server inherits it). */
    static int ownNice() throws IOException {
        return niceOf(Path.of("/proc/self"));
    }

    /** The nice value of a process or thread's /proc directory: the 19th field of its stat, the 17th after the parenthesised name. */
    private static int niceOf(Path task) throws IOException {
        String stat = Files.readString(task.resolve("stat"));
        return Integer.parseInt(stat.substring(stat.lastIndexOf(')') + 2).split(" ")[16]);
    }

    /**
     * The nice values of the server's threads whose name (as the kernel keeps it: 15 characters) starts
     * with {@code prefix}, read from /proc; waits up to 5 s for at least one to show {@code expect}.
     */
    java.util.Set<Integer> threadNice(String prefix, int expect) throws IOException, InterruptedException {
        java.util.Set<Integer> seen = new java.util.TreeSet<>();
        for (int i = 0; i < 100; i++) {
            seen.clear();
            try (var tasks = Files.list(Path.of("/proc", Long.toString(process.pid()), "task"))) {
                for (Path t : (Iterable<Path>) tasks::iterator) {
                    try {
                        if (Files.readString(t.resolve("comm")).startsWith(prefix)) seen.add(niceOf(t));
                    } catch (java.nio.file.NoSuchFileException gone) {
                        // the thread ended while listed
                    }
                }
            }
            if (seen.contains(expect)) break;
            Thread.sleep(50);
        }
        return seen;
    }

    String log() throws IOException {
        return Files.readString(log);
    }

    @Override
    public void close() throws Exception {
        if (process.isAlive()) stop();
    }
}
