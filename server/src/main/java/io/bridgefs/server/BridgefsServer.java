package io.bridgefs.server;

import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import com.codahale.metrics.jmx.JmxReporter;
import io.bridgefs.server.cache.CacheStats;
import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.config.ListenAddress;
import io.bridgefs.server.config.NbdExportSpec;
import io.bridgefs.server.config.P9ExportSpec;
import io.bridgefs.server.config.P9Security;
import io.bridgefs.server.p9.Mapped;
import io.bridgefs.server.p9.P9Export;
import io.bridgefs.server.p9.P9Listener;
import io.bridgefs.server.p9.P9ServerContext;
import io.bridgefs.server.config.ServerConfig;
import io.bridgefs.server.config.Sizes;
import io.bridgefs.server.metrics.IoMetrics;
import io.bridgefs.server.metrics.MetricsHttpHandler;
import io.bridgefs.server.metrics.MetricsText;
import io.bridgefs.server.metrics.ServerState;
import io.bridgefs.server.nbd.NbdExport;
import io.bridgefs.server.nbd.NbdExports;
import io.bridgefs.server.nbd.NbdListener;
import io.bridgefs.server.nbd.NbdServerContext;
import io.bridgefs.server.net.ConnectionGuard;
import io.bridgefs.server.net.MemoryBudget;
import io.bridgefs.server.net.Transport;
import io.bridgefs.server.posix.Posix;
import io.bridgefs.server.posix.ServerThreads;
import io.bridgefs.server.tls.NbdTls;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.util.concurrent.GlobalEventExecutor;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** One bridgefs process: the shared cache, the exports, the listeners and the metrics. */
public final class BridgefsServer implements AutoCloseable {
    /** Connections the metrics listener takes at once (16 per peer address). */
    static final int METRICS_CONNECTIONS = 64;
    private static final Logger log = LoggerFactory.getLogger(BridgefsServer.class);

    private final ServerConfig config;
    private final MetricRegistry registry = new MetricRegistry();
    private final PageCache cache;
    private final List<NbdExport> nbdExports = new ArrayList<>();
    private final List<IoMetrics> ioMetrics = new ArrayList<>();
    private final io.bridgefs.server.metrics.RequestCounts p9Requests = new io.bridgefs.server.metrics.RequestCounts(registry, "9p");
    private final ExecutorService executor;
    private final ScheduledExecutorService timer;
    private final Transport transport;
    private final ChannelGroup connections = new DefaultChannelGroup(GlobalEventExecutor.INSTANCE);
    private final List<Channel> listeners = new ArrayList<>();
    private JmxReporter jmx;
    private final List<P9Export> p9Exports = new ArrayList<>();
    private P9ServerContext p9Context;
    private Channel p9Channel;
    private Channel nbdChannel;
    private Channel metricsChannel;
    private volatile boolean closed;
    private final MemoryBudget budget;
    private ConnectionGuard nbdGuard;
    private ConnectionGuard p9Guard;

    private NbdTls tls = NbdTls.OFF;

    private BridgefsServer(ServerConfig config) {
        this.config = config;
        this.cache = new PageCache(config.cacheSize(), config.cacheMode(), config.dedup(),
                config.dirty().backgroundPercent(), config.dirty().limitPercent());
        this.cache.startBackgroundWriteback(config.dirty().flusherNice(), config.dirty().writeBehindBytes());
        this.budget = new MemoryBudget(config.limits().requestMemory());
        // workers are started by whichever thread submits while the pool is short of them (a network
        // thread may be acting as a 9P user then): each starts as the server, and is the server again
        // before every task but a 9P request, which sets its own user (ServerThreads)
        this.executor = ServerThreads.pool(config.ioThreads(), "bridgefs-io");
        this.timer = Executors.newSingleThreadScheduledExecutor(ServerThreads.factory("bridgefs-writeback", false));
        this.transport = new Transport(Math.max(2, Runtime.getRuntime().availableProcessors()));
    }

    /** Opens the exports and starts listening; on any failure everything opened so far is closed. */
    public static BridgefsServer start(ServerConfig config) throws IOException {
        BridgefsServer s = new BridgefsServer(config);
        try {
            s.tls = NbdTls.load(config.tls());
            s.openExports();
            s.openP9Exports();
            // a 9P client sends the mode it wants, already masked by its own umask: the server's umask must
            // not take bits away from it (Tmkdir 0777 is 0777, as diod and QEMU's 9P server do)
            if (!s.p9Exports.isEmpty()) Posix.umask(0);
            s.listen();
            return s;
        } catch (IOException | RuntimeException e) {
            s.close();
            throw e;
        }
    }

    private void openExports() throws IOException {
        for (NbdExportSpec spec : config.nbdExports()) {
            Path p = spec.path().toAbsolutePath();
            if (spec.bridged()) {
                if (!Files.isDirectory(p)) throw new NoSuchFileException(p.toString(), null, "bridged NBD export '" + spec.name() + "': directory not found");
                p = p.toRealPath();
                io.bridgefs.server.bridged.BridgedDisk disk = io.bridgefs.server.bridged.BridgedDisk.open(cache, p, spec.name(), spec.readahead(), spec.maxEntries());
                IoMetrics m = new IoMetrics(registry, IoPath.NBD.label(), spec.name(), "bridged");
                ioMetrics.add(m);
                nbdExports.add(new NbdExport(spec.name(), spec.description(), p, true, null, m, spec.tlsOnly(), spec.users(), spec.hosts(), disk));
                continue;
            }
            boolean inherited = io.bridgefs.server.posix.Inherited.fileFds(p) != null;     // opened before --user
            if (!inherited && !Files.exists(p) && spec.createSize() > 0) {
                if (p.getParent() != null) Files.createDirectories(p.getParent());
                try (RandomAccessFile raf = new RandomAccessFile(p.toFile(), "rw")) {
                    raf.setLength(spec.createSize());
                }
                log.info("created sparse image {} ({})", p, Sizes.human(spec.createSize()));
            }
            if (!inherited && !Files.exists(p)) throw new NoSuchFileException(p.toString(), null, "NBD export '" + spec.name() + "': image not found");
            if (!inherited && !Files.isRegularFile(p)) throw new IOException("NBD export '" + spec.name() + "': " + p + " is not a regular file");
            CachedFile file = cache.open(p, spec.readOnly());
            file.readahead(spec.readahead());
            IoMetrics m = new IoMetrics(registry, IoPath.NBD.label(), spec.name());
            ioMetrics.add(m);
            nbdExports.add(new NbdExport(spec.name(), spec.description(), p, spec.readOnly(), file, m, spec.tlsOnly(), spec.users(), spec.hosts()));
        }
    }

    private void openP9Exports() throws IOException {
        boolean privileged = io.bridgefs.server.posix.Credentials.privileged();     // may this process switch users at all
        for (P9ExportSpec spec : config.p9Exports()) {
            Path dir = spec.dir().toAbsolutePath().normalize();
            if (!Files.exists(dir) && spec.create()) Files.createDirectories(dir);
            if (!Files.isDirectory(dir)) throw new NoSuchFileException(dir.toString(), null, "9P export '" + spec.name() + "': directory not found");
            dir = dir.toRealPath();
            IoMetrics m = new IoMetrics(registry, IoPath.NINEP.label(), spec.name());
            ioMetrics.add(m);
            P9Security security = spec.securityFor(privileged);
            if (security == P9Security.PASSTHROUGH && !privileged) {
                throw new IOException("9P export '" + spec.name() + "': security=passthrough needs root (or CAP_SETUID, CAP_SETGID and the file"
                        + " capabilities); run as root, or choose security=mapped, which needs no privilege");
            }
            if (security == P9Security.SQUASH && spec.squashUid() != io.bridgefs.server.posix.Credentials.serverUid()
                    && !io.bridgefs.server.posix.Credentials.SERVER_IS_ROOT
                    && (io.bridgefs.server.posix.Capabilities.permitted() & io.bridgefs.server.posix.Capabilities.bit(io.bridgefs.server.posix.Capabilities.CHOWN)) == 0) {
                throw new IOException("9P export '" + spec.name() + "': squash=" + spec.squashUid() + ":" + spec.squashGid()
                        + " needs root or CAP_CHOWN (this server is uid " + io.bridgefs.server.posix.Credentials.serverUid() + "; squash to that, or use security=mapped)");
            }
            P9Export e = new P9Export(spec.name(), dir, spec.readOnly(), spec.squashUid(), spec.squashGid(), spec.devices(), m,
                    security, spec.rootSquash(), spec.hosts(), spec.readahead());
            if (e.mapped()) Mapped.checkSupported(dir);
            p9Exports.add(e);
            log.info("9P export '{}': {}", e.name(), e.describeSecurity());
        }
    }

    private void listen() throws IOException {
        registerCacheGauges();
        jmx = JmxReporter.forRegistry(registry).inDomain("bridgefs").build();
        jmx.start();
        if (!nbdExports.isEmpty()) {
            NbdServerContext ctx = new NbdServerContext(new NbdExports(nbdExports), executor, budget, tls);
            nbdGuard = new ConnectionGuard(IoPath.NBD.label(), config.limits(), registry);
            nbdChannel = transport.listen(config.nbdListen(), new NbdListener(ctx, connections, nbdGuard));
            listeners.add(nbdChannel);
        }
        if (!p9Exports.isEmpty()) {
            p9Context = new P9ServerContext(p9Exports, executor, cache, config.p9Msize(), 1024, p9Requests, budget)
                    .withFidLimit(config.limits().maxFids());
            p9Guard = new ConnectionGuard(IoPath.NINEP.label(), config.limits(), registry);
            P9ServerContext p9 = p9Context;
            registry.register("bridgefs.9p.fids", (Gauge<Integer>) p9::fids);
            p9Channel = transport.listen(config.p9Listen(), new P9Listener(p9Context, connections, p9Guard),
                    io.bridgefs.server.net.ServerIdentity.BUT_REQUESTS);
            listeners.add(p9Channel);
        }
        if (config.metricsListen() != null) {
            // a scraper or an operator needs few connections: at most 64, 16 per peer address (idle ones stay:
            // an HTTP client keeps its connection between scrapes)
            io.bridgefs.server.config.Limits l = config.limits();
            ConnectionGuard metricsGuard = new ConnectionGuard("metrics", new io.bridgefs.server.config.Limits(l.requestMemory(),
                    METRICS_CONNECTIONS, METRICS_CONNECTIONS / 4, 0, 60, java.util.List.of(), l.maxFids(), 0), new MetricRegistry());
            metricsChannel = transport.listen(config.metricsListen(), new ChannelInitializer<>() {
                @Override
                protected void initChannel(Channel ch) {
                    metricsGuard.install(ch);
                    ch.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(64 * 1024),
                            new MetricsHttpHandler(() -> MetricsText.prometheus(cache.snapshot(), ioMetrics, p9Requests.snapshot(), serverState()),
                                    () -> MetricsText.json(cache.snapshot(), ioMetrics, p9Requests.snapshot(), serverState()),
                                    () -> String.join("\n", cache.verify()),
                                    java.util.Map.of("/drop-caches", () -> "dropped " + cache.dropClean() + " clean pages\n",
                                            "/reset-latency", () -> "started " + IoMetrics.resetLatency(registry) + " latency timers afresh\n"),
                                    BridgefsServer.this::rescan));
                }
            });
            listeners.add(metricsChannel);
        }
        if (p9Context != null) {
            P9ServerContext p9 = p9Context;
            timer.scheduleWithFixedDelay(() -> {
                try {
                    int n = p9.releaseRemoved();
                    if (n > 0) log.debug("released {} kept file(s) removed on the host", n);
                } catch (RuntimeException e) {       // (a task that throws is never run again)
                    io.bridgefs.server.net.InternalErrors.record();
                    log.error("releasing kept files removed on the host failed", e);
                }
            }, P9ServerContext.SWEEP_SECONDS, P9ServerContext.SWEEP_SECONDS, TimeUnit.SECONDS);
        }
        int every = config.writebackSeconds();
        if (every > 0) {
            timer.scheduleWithFixedDelay(() -> {
                try {
                    cache.flushAll();
                } catch (IOException e) {
                    log.warn("periodic write-back failed (pages stay dirty): {}", e.toString());
                }
            }, every, every, TimeUnit.SECONDS);
        }
    }

    private void registerCacheGauges() {
        for (IoPath p : IoPath.values()) {
            String b = "bridgefs.cache." + p.label() + ".";
            registry.register(b + "hits", (Gauge<Long>) () -> cache.snapshot().hits(p));
            registry.register(b + "misses", (Gauge<Long>) () -> cache.snapshot().misses(p));
            registry.register(b + "fills", (Gauge<Long>) () -> cache.snapshot().fills(p));
            registry.register(b + "refaults", (Gauge<Long>) () -> cache.snapshot().refaults(p));
        }
        registry.register("bridgefs.cache.cached_bytes", (Gauge<Long>) () -> cache.snapshot().cachedBytes());
        registry.register("bridgefs.cache.dirty_bytes", (Gauge<Long>) () -> cache.snapshot().dirtyBytes());
        registry.register("bridgefs.cache.evictions", (Gauge<Long>) () -> cache.snapshot().evictions());
        registry.register("bridgefs.cache.shared_pages", (Gauge<Long>) () -> cache.snapshot().sharedPages());
        registry.register("bridgefs.open_descriptors", (Gauge<Integer>) Posix::openDescriptors);
        registry.register("bridgefs.request_memory_bytes", (Gauge<Long>) budget::used);
    }

    /** Connections, descriptors, fids and request memory now. */
    public ServerState serverState() {
        long[] conns = new long[IoPath.values().length], refused = new long[conns.length], timedOut = new long[conns.length];
        for (IoPath p : IoPath.values()) {
            ConnectionGuard g = p == IoPath.NBD ? nbdGuard : p9Guard;
            if (g == null) continue;
            conns[p.ordinal()] = g.open();
            refused[p.ordinal()] = g.refused();
            timedOut[p.ordinal()] = g.timedOut();
        }
        return new ServerState(conns, refused, timedOut, Posix.openDescriptors(), p9Context == null ? 0 : p9Context.fids(),
                budget.used(), budget.limit(), tls.handshakesOk.get(), tls.handshakesFailed.get(), tls.active.get(), p9Requests.latencies(),
                p9Requests.fastSnapshot());
    }

    public PageCache cache() { return cache; }
    public MemoryBudget budget() { return budget; }
    /** Open connections of a path ("nbd" or "9p"), 0 where it has no listener. */
    public int connections(String path) {
        ConnectionGuard g = path.equals(IoPath.NBD.label()) ? nbdGuard : p9Guard;
        return g == null ? 0 : g.open();
    }
    public MetricRegistry registry() { return registry; }
    public List<NbdExport> nbdExports() { return List.copyOf(nbdExports); }
    public CacheStats stats() { return cache.snapshot(); }

    /** The bound NBD TCP address (useful with port 0), or null for a unix socket or no NBD exports. */
    public InetSocketAddress nbdAddress() {
        return nbdChannel != null && nbdChannel.localAddress() instanceof InetSocketAddress a ? a : null;
    }

    /** The bound 9P TCP address, or null. */
    public InetSocketAddress p9Address() {
        return p9Channel != null && p9Channel.localAddress() instanceof InetSocketAddress a ? a : null;
    }

    public List<P9Export> p9Exports() { return List.copyOf(p9Exports); }

    public InetSocketAddress metricsAddress() {
        return metricsChannel != null && metricsChannel.localAddress() instanceof InetSocketAddress a ? a : null;
    }

    /** POST /exports/NAME/rescan: a bridged export's new snapshot, refused (and run later) while clients are connected. */
    MetricsHttpHandler.Answer rescan(String name) {
        NbdExport e = nbdExports.stream().filter(x -> x.name().equals(name) && x.bridged() != null).findFirst().orElse(null);
        if (e == null) return new MetricsHttpHandler.Answer(404, "no bridged export named '" + name + "'\n");
        try {
            var img = e.bridged().rescanIfIdle();
            if (img == null) {
                return new MetricsHttpHandler.Answer(409, "refused: " + e.bridged().clients() + " client(s) connected to '" + name
                        + "'; the rescan runs when the last one disconnects\n");
            }
            return new MetricsHttpHandler.Answer(200, "rescanned '" + name + "': " + img.tree().entries() + " entries, image " + img.size() + " bytes\n");
        } catch (IOException ex) {
            log.warn("rescan of bridged export '{}' failed: {}", name, ex.toString());
            return new MetricsHttpHandler.Answer(500, "rescan failed: " + ex.getMessage() + "\n");
        }
    }

    /** Lines telling a person how to reach each export with real clients. */
    public String connectHelp() {
        StringBuilder b = new StringBuilder();
        b.append("bridgefs is serving (cache ").append(Sizes.human(cache.capacityBytes())).append(", ")
                .append(cache.mode().name().toLowerCase()).append(", backing I/O ")
                .append(cache.snapshot().directIo() ? "O_DIRECT" : "buffered (O_DIRECT unsupported here)").append(")\n");
        for (NbdExport e : nbdExports) {
            String uri = nbdUri(e.name());
            b.append("\nNBD export '").append(e.name()).append("': ").append(e.path()).append(e.bridged() != null ? " as an ext4 image (bridged)" : "").append(", ")
                    .append(Sizes.human(e.size())).append(e.readOnly() ? ", read-only" : ", read-write").append('\n');
            b.append("  nbdinfo ").append(uri).append('\n');
            b.append("  qemu-img info ").append(uri).append('\n');
            b.append("  qemu-system-x86_64 ... -drive file=").append(uri).append(",format=raw,if=virtio\n");
        }
        for (P9Export e : p9Exports) {
            InetSocketAddress a = p9Address();
            b.append("\n9P export '").append(e.name()).append("': ").append(e.root()).append(e.readOnly() ? ", read-only" : ", read-write")
                    .append(", ").append(e.describeSecurity()).append('\n');
            if (a != null) {
                b.append("  in a QEMU guest (-nic user): mount -t 9p -o trans=tcp,port=").append(a.getPort())
                        .append(",version=9p2000.L,aname=").append(e.name()).append(",msize=262144 10.0.2.2 /mnt\n");
                b.append("  from this host: diodls -s 127.0.0.1:").append(a.getPort()).append(" -a ").append(e.name()).append(" /\n");
            } else {
                b.append("  9P on ").append(config.p9Listen()).append('\n');
            }
        }
        InetSocketAddress m = metricsAddress();
        if (m != null) {
            b.append("\nmetrics: http://").append(m.getHostString()).append(':').append(m.getPort()).append("/metrics  (JSON: /stats)\n");
        }
        if (tls.enabled()) b.append("\nNBD TLS: ").append(tls.describe()).append(" (clients: nbds:// URIs, qemu tls-creds objects)\n");
        b.append("\nStop with Ctrl-C or SIGTERM: in-flight requests finish and dirty pages are flushed.\n");
        return b.toString();
    }

    private String nbdUri(String export) {
        ListenAddress l = config.nbdListen();
        if (l.isUnix()) return "'nbd+unix:///" + export + "?socket=" + l.unixPath().toAbsolutePath() + "'";
        InetSocketAddress a = nbdAddress();
        String host = a.getAddress().isAnyLocalAddress() ? "127.0.0.1" : a.getHostString();
        if (host.contains(":")) host = "[" + host + "]";
        return "nbd://" + host + ":" + a.getPort() + "/" + export;
    }

    /**
     * Graceful stop: stop accepting, let in-flight requests finish, disconnect clients, flush every
     * dirty page to stable storage, close the files.
     */
    @Override
    public synchronized void close() throws IOException {
        if (closed) return;
        closed = true;
        for (Channel c : listeners) c.close().syncUninterruptibly();
        // never shutdownNow: an interrupt must not reach a thread in the middle of a backing write
        timer.shutdown();
        executor.shutdown();
        try {
            if (!timer.awaitTermination(60, TimeUnit.SECONDS)) log.warn("periodic write-back did not finish in 60 s");
            if (!executor.awaitTermination(30, TimeUnit.SECONDS)) log.warn("in-flight requests did not finish in 30 s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        connections.close().syncUninterruptibly();
        IOException failure = null;
        if (p9Context != null) p9Context.releaseAll();
        for (NbdExport e : nbdExports) if (e.bridged() != null) e.bridged().close();
        try {
            cache.close();
        } catch (IOException e) {
            failure = e;
        }
        for (NbdExport e : nbdExports) {
            if (e.file() == null) continue;
            try {
                e.file().close();
            } catch (IOException ex) {
                if (failure == null) failure = ex;
            }
        }
        if (jmx != null) jmx.stop();
        transport.close();
        if (config.nbdListen().isUnix() && nbdChannel != null) Files.deleteIfExists(config.nbdListen().unixPath());
        if (config.p9Listen().isUnix() && p9Channel != null) Files.deleteIfExists(config.p9Listen().unixPath());
        if (failure != null) throw failure;
    }
}
