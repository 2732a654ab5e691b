package io.bridgefs.server.metrics;

import com.codahale.metrics.Counter;
import com.codahale.metrics.MetricRegistry;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Requests of one protocol path by message type (for 9P: walk, getattr, lopen, read, clunk, ...), so an
 * operator sees how many round trips a workload costs. Registered as {@code bridgefs.<path>.requests.<type>}.
 */
public final class RequestCounts {
    private final MetricRegistry registry;
    private final String base;
    private final Map<String, Counter> counters = new ConcurrentHashMap<>();
    private final Map<String, com.codahale.metrics.Timer> timers = new ConcurrentHashMap<>();
    private final Map<String, Counter> fast = new ConcurrentHashMap<>();

    public RequestCounts(MetricRegistry registry, String path) {
        this.registry = registry;
        this.base = MetricRegistry.name("bridgefs", path, "requests");
    }

    public void count(String type) {
        counters.computeIfAbsent(type, t -> registry.counter(MetricRegistry.name(base, t))).inc();
    }

    /** One request of {@code type} was answered on the network thread, without the executor. */
    public void fast(String type) {
        fast.computeIfAbsent(type, t -> registry.counter(MetricRegistry.name(base, t, "fast"))).inc();
    }

    /** Type to the count answered on the network thread, sorted by type. */
    public Map<String, Long> fastSnapshot() {
        return counts(fast);
    }

    /** The server's own time for one request of {@code type}: from admission until its reply was written. */
    public void time(String type, long nanos) {
        timers.computeIfAbsent(type, t -> IoMetrics.timer(registry, MetricRegistry.name(base, t, "time"))).update(nanos, java.util.concurrent.TimeUnit.NANOSECONDS);
    }

    /** Type to {p50, p99} of the server's time per request in seconds (recent requests, exponentially decaying), sorted by type. */
    public Map<String, double[]> latencies() {
        Map<String, double[]> out = new TreeMap<>();
        timers.forEach((t, tm) -> {
            com.codahale.metrics.Snapshot s = tm.getSnapshot();
            out.put(t, new double[] {s.getMedian() / 1e9, s.get99thPercentile() / 1e9});
        });
        return out;
    }

    /** Type to count, sorted by type. */
    public Map<String, Long> snapshot() {
        return counts(counters);
    }

    private static Map<String, Long> counts(Map<String, Counter> by) {
        Map<String, Long> out = new TreeMap<>();
        by.forEach((t, c) -> out.put(t, c.getCount()));
        return out;
    }
}
