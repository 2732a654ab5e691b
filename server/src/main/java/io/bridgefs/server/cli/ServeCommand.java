package io.bridgefs.server.cli;

import io.bridgefs.server.BridgefsServer;
import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.DedupMode;
import io.bridgefs.server.config.Limits;
import io.bridgefs.server.tls.TlsMode;
import io.bridgefs.server.tls.TlsSettings;
import io.bridgefs.server.config.ListenAddress;
import io.bridgefs.server.config.NbdExportSpec;
import io.bridgefs.server.config.P9ExportSpec;
import io.bridgefs.server.config.ServerConfig;
import io.bridgefs.server.config.Sizes;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "serve", sortOptions = false, description = {
        "Serve host images over NBD and host directories over 9P2000.L, through one shared page cache.",
        "With neither exports nor --config, serves the embedded default (conf/bridgefs.conf)."})
public final class ServeCommand implements Callable<Integer> {
    static final String DEFAULT_CACHE_SIZE = "256m";
    static final String DEFAULT_REQUEST_MEMORY = "128m";
    static final String DEFAULT_DEDUP = "shadow";
    static final String DEFAULT_NBD_LISTEN = "127.0.0.1:10809", DEFAULT_P9_LISTEN = "127.0.0.1:5640";

    @Option(names = "--config", paramLabel = "FILE",
            description = "Read settings from FILE ('setting = value' lines, settings named like the long options). Options on the command line override it.")
    String config;

    @Option(names = "--nbd-listen", paramLabel = "HOST:PORT|unix:PATH", defaultValue = DEFAULT_NBD_LISTEN,
            description = "Where NBD clients connect (default: ${DEFAULT-VALUE}). unix:PATH,mode=0660,group=NAME sets the socket file's permissions and group.")
    String nbdListen;

    @Option(names = "--nbd-export", paramLabel = "NAME=PATH[,ro][,bridged][,description=TEXT]",
            description = {"An image file to serve (repeatable). The client's export name selects it; the name \"\" or else the first export is the default.",
                    "ro: read-only. description=TEXT (last): shown by nbdinfo --list. create=SIZE: create a sparse image of SIZE if PATH is missing.",
                    "tls-only: only over TLS (with --tls on). users=NAME[:NAME...]: only these PSK users or certificate common names.",
                    "hosts=CIDR[:CIDR...]: only peers in these ranges see and use it. readahead=off|auto|SIZE (default auto: starts at 32k, grows while used).",
                    "bridged: PATH is a directory, served read-only as an ext4 image whose data blocks are the files' own cached pages;",
                    "entries=N: a bridged tree of more than N names is refused (default 250000; the heap is sized for it)."})
    List<String> nbdExports = new ArrayList<>();

    @Option(names = "--9p-listen", paramLabel = "HOST:PORT|unix:PATH", defaultValue = DEFAULT_P9_LISTEN,
            description = "Where 9P2000.L clients connect (default: ${DEFAULT-VALUE}). unix:PATH,mode=0660,group=NAME as for --nbd-listen.")
    String p9Listen;

    @Option(names = "--9p-export", paramLabel = "NAME=DIR[,ro][,security=passthrough|mapped|squash|none][,squash=UID:GID][,root=allow|squash][,hosts=CIDR[:CIDR...]][,create][,devices]",
            description = {"A host directory to serve over 9P2000.L (repeatable). The client's aname selects it; an empty aname gets the first.",
                    "security=passthrough (default where the server may switch users): requests run with the attaching user's fsuid/fsgid/groups;",
                    "  root=squash: guest root acts as nobody. security=mapped: host files stay the server's (0600/0700), the guest's owners, modes",
                    "  and device nodes live in user.virtfs.* xattrs (QEMU's mapped-xattr; no privilege needed). security=squash with squash=UID:GID:",
                    "  everything created belongs to UID:GID. security=none (default without privilege): as the server, ownership as the client sets it.",
                    "ro: read-only (EROFS). hosts=: only peers in these ranges may attach. readahead=off|auto|SIZE (default auto, from 128k). create: make DIR if missing.",
                    "devices: clients may create real device nodes (never opened by the server; under mapped they are plain files anyway)."})
    List<String> p9Exports = new ArrayList<>();

    @Option(names = "--9p-msize", paramLabel = "SIZE", defaultValue = "1m",
            description = "Largest 9P message size a client may negotiate (default: ${DEFAULT-VALUE}).")
    String p9Msize;

    @Option(names = "--cache-size", paramLabel = "SIZE", defaultValue = DEFAULT_CACHE_SIZE,
            description = "Size of the shared page cache, off-heap (default: ${DEFAULT-VALUE}; suffixes k, m, g, t).")
    String cacheSize;

    @Option(names = "--cache-mode", paramLabel = "MODE", defaultValue = "writeback",
            description = "writeback (default: dirty pages flushed on FLUSH/FUA/timer/shutdown), writethrough (written before the reply), directsync (written and synced before the reply).")
    String cacheMode;

    @Option(names = "--dedup", paramLabel = "MODE", defaultValue = DEFAULT_DEDUP,
            description = "off; shadow (default): hash every filled page and count fills whose bytes are already resident under another key (duplicate_fills); merge: also map such pages onto one frame, copied on write (dedup_pages_shared/sharing, dedup_cow_breaks).")
    String dedup;

    @Option(names = "--metrics-listen", paramLabel = "HOST:PORT",
            description = "Serve Prometheus text at /metrics and JSON at /stats here (off unless given).")
    String metricsListen;

    @Option(names = "--io-threads", paramLabel = "N", defaultValue = "16",
            description = "Threads doing file I/O off the network event loops (default: ${DEFAULT-VALUE}).")
    int ioThreads;

    @Option(names = "--writeback-interval", paramLabel = "SECONDS", defaultValue = "5",
            description = "Write back and sync dirty pages this often; 0 turns the timer off (default: ${DEFAULT-VALUE}).")
    int writebackSeconds;

    @Option(names = "--dirty-background", paramLabel = "auto|PERCENT", defaultValue = "auto",
            description = "Write back in the background once this share of the cache is dirty (like vm.dirty_background_ratio); auto: from 25, raised while the pages written back in the background are written again before they leave the cache, lowered as pages are evicted, back to 25 when writers reach the limit (default: ${DEFAULT-VALUE}).")
    String dirtyBackground;

    private int dirtyBackgroundPercent() {
        if (dirtyBackground.equals("auto")) return io.bridgefs.server.cache.PageCache.AUTO;
        try {
            int p = Integer.parseInt(dirtyBackground);
            if (p >= 1) return p;
        } catch (NumberFormatException e) {
            // the message below
        }
        throw new IllegalArgumentException("--dirty-background must be auto or a percent of the cache (1 to --dirty-limit)");
    }

    @Option(names = "--dirty-limit", paramLabel = "PERCENT", defaultValue = "75",
            description = "Writers wait for write-back once this share of the cache is dirty (like vm.dirty_ratio; at most 90; default: ${DEFAULT-VALUE}).")
    int dirtyLimit;

    @Option(names = "--writeback-nice", paramLabel = "N", defaultValue = "" + io.bridgefs.server.cache.PageCache.FLUSHER_NICE,
            description = "Runs the thread writing back in the background this many nice levels below the server (0-19, as nice -n), so that it yields the CPU to requests; 0 runs it at the server's priority (default: ${DEFAULT-VALUE}).")
    int writebackNice;

    @Option(names = "--write-behind", paramLabel = "SIZE|off", defaultValue = "8m",
            description = "Writes a file written sequentially back behind its writer, a chunk at a time, once this much of it is dirty, while nothing written back in the background is being written again; a FLUSH then waits for the last chunks only. off: only the thresholds above start write-back (default: ${DEFAULT-VALUE}).")
    String writeBehind;

    @Option(names = "--request-memory", paramLabel = "SIZE", defaultValue = DEFAULT_REQUEST_MEMORY,
            description = "Memory for requests read but not yet answered and replies the clients have not taken, all connections together; past it connections stop being read (default: ${DEFAULT-VALUE}).")
    String requestMemory;

    @Option(names = "--max-connections", paramLabel = "N", defaultValue = "1024",
            description = "Connections per listener; more are closed as they arrive (default: ${DEFAULT-VALUE}).")
    int maxConnections;

    @Option(names = "--max-connections-per-peer", paramLabel = "N", defaultValue = "256",
            description = "Connections per listener from one peer address (default: ${DEFAULT-VALUE}).")
    int maxConnectionsPerPeer;

    @Option(names = "--handshake-limit", paramLabel = "SECONDS", defaultValue = "" + Limits.DEFAULT_HANDSHAKE_LIMIT,
            description = "Close a connection that has not finished negotiating this long after it arrived (NBD: up to NBD_OPT_GO, TLS included; 9P: up to a successful Tattach); 0: never (default: ${DEFAULT-VALUE}), as qemu-nbd's --handshake-limit.")
    int handshakeLimit;

    @Option(names = "--max-fids", paramLabel = "N", defaultValue = "" + Limits.DEFAULT_MAX_FIDS,
            description = {"9P fids of all connections together (default: ${DEFAULT-VALUE}); the heap is sized for them (1 KiB each).",
                    "Past half of it a connection holding more than its share (N over the connections) gets EMFILE for new fids; past N every one does."})
    int maxFids;

    @Option(names = "--idle-timeout", paramLabel = "SECONDS", defaultValue = "0",
            description = "Close a connection with no request in progress and no traffic for this long; 0: never (default: ${DEFAULT-VALUE}). TCP keepalive is always on.")
    int idleTimeout;

    @Option(names = "--stall-timeout", paramLabel = "SECONDS", defaultValue = "60",
            description = "Close a connection whose client takes none of its queued replies, or leaves a large request (over 64 KiB) unfinished, for this long (default: ${DEFAULT-VALUE}); while others wait for request memory, one that holds some and makes no progress is closed within 5 s to 10 s.")
    int stallTimeout;

    @Option(names = "--allow", paramLabel = "CIDR",
            description = "Accept NBD and 9P connections only from these addresses (repeatable; ADDRESS or ADDRESS/BITS, IPv4 or IPv6). Default: every peer. Others are closed on arrival, logged and counted.")
    List<String> allow = new ArrayList<>();

    @Option(names = "--tls", paramLabel = "off|on|require", defaultValue = "off",
            description = "TLS on the NBD listener (STARTTLS): off (default); on: offered, plaintext clients served except on tls-only exports; require: nothing but STARTTLS before TLS.")
    String tls;

    @Option(names = "--tls-certificates", paramLabel = "DIR",
            description = "X.509: DIR/ca-cert.pem, server-cert.pem, server-key.pem and optional ca-crl.pem (qemu's and nbdkit's names).")
    String tlsCertificates;

    @Option(names = "--tls-verify-peer", arity = "0..1", description = "Require a client certificate signed by the CA (and not revoked in ca-crl.pem).")
    boolean tlsVerifyPeer;

    @Option(names = "--tls-psk", paramLabel = "FILE",
            description = "Pre-shared keys: lines username:hexkey (psktool's keys.psk). With --tls-certificates too, PSK is used.")
    String tlsPsk;

    @Option(names = "--user", paramLabel = "NAME",
            description = {"Started as root: bind the TCP listeners and open the images, then become NAME (or a numeric uid), keeping only the",
                    "capabilities the 9P exports' models need (passthrough: CAP_SETUID, CAP_SETGID and the file capabilities; none/squash:",
                    "the file capabilities; mapped: none). 9P export directories, unix sockets and images to create must be NAME's to reach."})
    String user;

    @Option(names = {"-h", "--help"}, usageHelp = true, description = "Show this help.")
    boolean help;

    ServerConfig toConfig() {
        List<NbdExportSpec> exports = new ArrayList<>();
        for (String e : nbdExports) exports.add(NbdExportSpec.parse(e));
        List<P9ExportSpec> p9 = new ArrayList<>();
        for (String e : p9Exports) p9.add(P9ExportSpec.parse(e));
        if (exports.isEmpty() && p9.isEmpty()) {
            throw new IllegalArgumentException("no exports: give --nbd-export NAME=PATH, --9p-export NAME=DIR or --config FILE");
        }
        long msize = Sizes.parse(p9Msize);
        if (msize < 8192 || msize > (16 << 20)) throw new IllegalArgumentException("--9p-msize must be between 8k and 16m");
        if (ioThreads < 1 || ioThreads > 1024) throw new IllegalArgumentException("--io-threads must be 1..1024");
        if (writebackSeconds < 0) throw new IllegalArgumentException("--writeback-interval must be >= 0");
        return new ServerConfig(ListenAddress.parse(nbdListen), exports, Sizes.parse(cacheSize), CacheMode.parse(cacheMode),
                metricsListen == null || metricsListen.isBlank() ? null : ListenAddress.parse(metricsListen),
                ioThreads, writebackSeconds, ListenAddress.parse(p9Listen), p9, (int) msize, DedupMode.parse(dedup),
                new Limits(Sizes.parse(requestMemory), maxConnections, maxConnectionsPerPeer, idleTimeout, stallTimeout,
                        allow.stream().map(io.bridgefs.server.config.Cidr::parse).toList(), maxFids, handshakeLimit),
                new TlsSettings(TlsMode.parse(tls), tlsCertificates == null ? null : java.nio.file.Path.of(tlsCertificates), tlsVerifyPeer,
                        tlsPsk == null ? null : java.nio.file.Path.of(tlsPsk)),
                new ServerConfig.DirtyRatios(dirtyBackgroundPercent(), dirtyLimit, writebackNice,
                        writeBehind.equals("off") ? 0 : Sizes.parse(writeBehind)));
    }


    @Override
    public Integer call() throws Exception {
        ServerConfig cfg = toConfig();
        if (!io.bridgefs.server.posix.Posix.keepFreedMemory()) {
            System.err.println("bridgefs: could not tune the C allocator (mallopt): large writes may run slower");
        }
        BridgefsServer server = BridgefsServer.start(cfg);
        if (user != null || !io.bridgefs.server.posix.Credentials.SERVER_IS_ROOT) System.out.println("bridgefs: " + UserDrop.describe());
        System.out.println(server.connectHelp());
        System.out.flush();
        CountDownLatch stopped = new CountDownLatch(1);
        Runnable stop = () -> {
            System.err.println("bridgefs: stopping: finishing in-flight requests and flushing dirty pages");
            Thread watchdog = new Thread(() -> {
                try {
                    Thread.sleep(120_000);
                } catch (InterruptedException e) {
                    return;
                }
                System.err.println("bridgefs: stopping took over 120 s; exiting without waiting further");
                Runtime.getRuntime().halt(1);
            }, "bridgefs-stop-watchdog");
            watchdog.setDaemon(true);
            watchdog.start();
            try {
                server.close();
                stopped.countDown();
            } catch (Throwable e) {
                // an Error too (a jar replaced under a running server fails class loading here): the
                // process must end, never sit with its listeners closed
                System.err.println("bridgefs: error while stopping: " + e);
                Runtime.getRuntime().halt(1);
            }
        };
        Signals.onTermination(stop);
        stopped.await();
        return 0;
    }
}
