package io.bridgefs.server.metrics;

import com.codahale.metrics.Counter;
import com.codahale.metrics.LockFreeExponentiallyDecayingReservoir;
import com.codahale.metrics.MetricRegistry;
import com.codahale.metrics.Timer;

/**
 * Client I/O of one export on one path, in QEMU query-blockstats terms: operation counts and bytes,
 * with latency timers. Registered as {@code bridgefs.<path>.<export>.<op>} for JMX; the Prometheus
 * view labels them {@code {path, export}}.
 */
public final class IoMetrics {
    public final String path;
    public final String export;
    /** What the export is: "image" (an NBD image file), "bridged" (a directory as an ext4 image), "directory" (9P). */
    public final String kind;
    public final Timer read, write, flush, trim, writeZeroes, blockStatus, cache;
    public final Counter readBytes, writeBytes, errors;
    /** Reads whose missing pages were read from disk together with other requests' (NBD; one io_submit a batch). */
    public final Counter batchedReads;

    public IoMetrics(MetricRegistry registry, String path, String export) {
        this(registry, path, export, path.equals("nbd") ? "image" : "directory");
    }

    public IoMetrics(MetricRegistry registry, String path, String export, String kind) {
        this.path = path;
        this.export = export;
        this.kind = kind;
        String base = MetricRegistry.name("bridgefs", path, export.isEmpty() ? "(default)" : export);
        read = timer(registry, base + ".read");
        write = timer(registry, base + ".write");
        flush = timer(registry, base + ".flush");
        trim = timer(registry, base + ".trim");
        writeZeroes = timer(registry, base + ".write_zeroes");
        blockStatus = timer(registry, base + ".block_status");
        cache = timer(registry, base + ".cache");
        readBytes = registry.counter(base + ".read_bytes");
        writeBytes = registry.counter(base + ".write_bytes");
        errors = registry.counter(base + ".errors");
        batchedReads = registry.counter(base + ".batched_reads");
    }

    /**
     * A timer over a lock-free reservoir: timers are updated on the network threads for every request,
     * and the default reservoir takes a lock per update (a getattr storm spent several percent there).
     */
    public static Timer timer(MetricRegistry registry, String name) {
        return registry.timer(name, Latency::new);
    }

    /** Starts every latency timer of {@code registry} afresh (POST /reset-latency); returns how many. */
    public static int resetLatency(MetricRegistry registry) {
        int n = 0;
        for (Timer t : registry.getTimers().values()) {
            if (t instanceof Latency l) {
                l.reservoir.restart();
                n++;
            }
        }
        return n;
    }

    /** A timer whose quantiles an operator can start afresh; its count and rates go on. */
    private static final class Latency extends Timer {
        final Fresh reservoir;

        Latency() {
            this(new Fresh());
        }

        private Latency(Fresh r) {
            super(r);
            reservoir = r;
        }
    }

    /** A lock-free exponentially decaying reservoir, replaced whole by {@link #restart}. */
    private static final class Fresh implements com.codahale.metrics.Reservoir {
        private volatile com.codahale.metrics.Reservoir r = LockFreeExponentiallyDecayingReservoir.builder().build();

        void restart() { r = LockFreeExponentiallyDecayingReservoir.builder().build(); }

        @Override public int size() { return r.size(); }

        @Override public void update(long value) { r.update(value); }

        @Override public com.codahale.metrics.Snapshot getSnapshot() { return r.getSnapshot(); }
    }
}
