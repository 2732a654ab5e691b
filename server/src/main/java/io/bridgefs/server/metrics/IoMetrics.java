package io.bridgefs.server.metrics;

import com.codahale.metrics.Counter;
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
    public final Timer read, write, flush, trim, writeZeroes, blockStatus, cache;
    public final Counter readBytes, writeBytes, errors;

    public IoMetrics(MetricRegistry registry, String path, String export) {
        this.path = path;
        this.export = export;
        String base = MetricRegistry.name("bridgefs", path, export.isEmpty() ? "(default)" : export);
        read = registry.timer(base + ".read");
        write = registry.timer(base + ".write");
        flush = registry.timer(base + ".flush");
        trim = registry.timer(base + ".trim");
        writeZeroes = registry.timer(base + ".write_zeroes");
        blockStatus = registry.timer(base + ".block_status");
        cache = registry.timer(base + ".cache");
        readBytes = registry.counter(base + ".read_bytes");
        writeBytes = registry.counter(base + ".write_bytes");
        errors = registry.counter(base + ".errors");
    }
}
