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

    public RequestCounts(MetricRegistry registry, String path) {
        this.registry = registry;
        this.base = MetricRegistry.name("bridgefs", path, "requests");
    }

    public void count(String type) {
        counters.computeIfAbsent(type, t -> registry.counter(MetricRegistry.name(base, t))).inc();
    }

    /** Type to count, sorted by type. */
    public Map<String, Long> snapshot() {
        Map<String, Long> out = new TreeMap<>();
        counters.forEach((t, c) -> out.put(t, c.getCount()));
        return out;
    }
}
