package io.bridgefs.server.metrics;

import com.codahale.metrics.Snapshot;
import com.codahale.metrics.Timer;
import io.bridgefs.server.cache.CacheStats;
import io.bridgefs.server.cache.DedupMode;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.net.InternalErrors;
import java.util.List;
import java.util.Locale;

/** Renders the counters as Prometheus text exposition (version 0.0.4) and as a JSON snapshot. */
public final class MetricsText {
    private MetricsText() {}

    /** Every counter as Prometheus text, with the 9P requests by message type ({@code bridgefs_9p_requests_total{type}}). */
    public static String prometheus(CacheStats s, List<IoMetrics> io, java.util.Map<String, Long> p9Requests) {
        return prometheus(s, io, p9Requests, null);
    }

    public static String prometheus(CacheStats s, List<IoMetrics> io, java.util.Map<String, Long> p9Requests, ServerState server) {
        StringBuilder b = new StringBuilder(4096);
        if (server != null) {
            header(b, "connections", "gauge", "Open client connections");
            perPathValues(b, "connections", server.connections());
            header(b, "connections_refused_total", "counter", "Connections closed on arrival (--max-connections, --max-connections-per-peer)");
            perPathValues(b, "connections_refused_total", server.refused());
            header(b, "connections_timed_out_total", "counter", "Connections closed for idling (--idle-timeout), not taking replies (--stall-timeout) or not negotiating (--handshake-limit)");
            perPathValues(b, "connections_timed_out_total", server.timedOut());
            gauge(b, "open_descriptors", "File descriptors the server process holds", server.openDescriptors());
            gauge(b, "9p_fids", "9P fids held by all connections", server.fids());
            gauge(b, "request_memory_bytes", "Bytes of requests and replies in flight (all connections)", server.requestMemory());
            gauge(b, "request_memory_limit_bytes", "--request-memory", server.requestMemoryLimit());
            header(b, "tls_handshakes_total", "counter", "NBD TLS handshakes by result");
            b.append("bridgefs_tls_handshakes_total{result=\"ok\"} ").append(server.tlsHandshakesOk()).append('\n');
            b.append("bridgefs_tls_handshakes_total{result=\"failed\"} ").append(server.tlsHandshakesFailed()).append('\n');
            header(b, "connections_by_tls", "gauge", "Open NBD connections by whether they run TLS");
            b.append("bridgefs_connections_by_tls{tls=\"yes\"} ").append(server.tlsConnections()).append('\n');
            b.append("bridgefs_connections_by_tls{tls=\"no\"} ").append(Math.max(0, server.connections()[IoPath.NBD.ordinal()] - server.tlsConnections())).append('\n');
            header(b, "internal_errors_total", "counter", "Server faults: exceptions no client input should cause (each is logged)");
            b.append("bridgefs_internal_errors_total ").append(InternalErrors.count()).append('\n');
            if (!server.p9Latency().isEmpty()) {
                header(b, "9p_request_seconds", "summary", "The server's own time per 9P request, admission to reply written, by message type");
                server.p9Latency().forEach((t, q) -> b.append("bridgefs_9p_request_seconds{type=\"").append(t).append("\",quantile=\"0.5\"} ")
                        .append(String.format(java.util.Locale.ROOT, "%.9f", q[0])).append('\n')
                        .append("bridgefs_9p_request_seconds{type=\"").append(t).append("\",quantile=\"0.99\"} ")
                        .append(String.format(java.util.Locale.ROOT, "%.9f", q[1])).append('\n'));
            }
            byType(b, "9p_requests_fast_total", "9P requests answered on the network thread, without the executor, by message type", server.p9Fast());
        }
        ioCounter(b, "read_ops_total", "Client read requests", io, m -> m.read.getCount());
        ioCounter(b, "read_bytes_total", "Bytes read by clients", io, m -> m.readBytes.getCount());
        ioCounter(b, "batched_reads_total", "Client reads that missed the cache and were read from disk in a batch with others (one io_submit)", io, m -> m.batchedReads.getCount());
        ioCounter(b, "write_ops_total", "Client write requests", io, m -> m.write.getCount());
        ioCounter(b, "write_bytes_total", "Bytes written by clients", io, m -> m.writeBytes.getCount());
        ioCounter(b, "flush_ops_total", "Client flush requests", io, m -> m.flush.getCount());
        ioCounter(b, "trim_ops_total", "Client trim/discard requests", io, m -> m.trim.getCount());
        ioCounter(b, "write_zeroes_ops_total", "Client write-zeroes requests", io, m -> m.writeZeroes.getCount());
        ioCounter(b, "io_errors_total", "Requests answered with an error", io, m -> m.errors.getCount());
        latency(b, "read", io, m -> m.read);
        latency(b, "write", io, m -> m.write);
        latency(b, "flush", io, m -> m.flush);
        perPath(b, "cache_hits_total", "Page lookups served from the cache", s.hits());
        perPath(b, "cache_misses_total", "Page lookups not found in the cache", s.misses());
        perPath(b, "cache_fills_total", "Pages read from backing storage", s.fills());
        perPath(b, "cache_fill_bytes_total", "Bytes read from backing storage into the cache", s.fillBytes());
        perPath(b, "refaults_total", "Fills of a key that was evicted recently", s.refaults());
        perPath(b, "duplicate_fills_total", "Fills whose bytes equal a page already resident under another key", s.duplicateFills());
        perPath(b, "duplicate_fill_bytes_total", "Bytes of duplicate fills: read again from storage though already in memory", s.duplicateFillBytes());
        header(b, "cross_path_hits_total", "counter", "Hits by one path on a page filled by the other");
        for (IoPath from : IoPath.values()) {
            for (IoPath to : IoPath.values()) {
                if (from == to) continue;
                b.append("bridgefs_cross_path_hits_total{from=\"").append(from.label()).append("\",to=\"")
                        .append(to.label()).append("\"} ").append(s.crossPathHits(from, to)).append('\n');
            }
        }
        gauge(b, "shared_pages", "Resident pages touched by both paths", s.sharedPages());
        gauge(b, "cached_bytes", "Memory holding resident pages (a merged frame counts once)", s.cachedBytes());
        gauge(b, "resident_pages", "Resident pages (keys), merged or not", s.residentPages());
        gauge(b, "dirty_bytes", "Bytes of pages not yet written back", s.dirtyBytes());
        gauge(b, "pinned_pages", "Pages pinned by in-flight I/O", s.pinnedPages());
        gauge(b, "zero_pages", "Resident all-zero pages filled from storage", s.zeroPages());
        header(b, "dedup_mode", "gauge", "The --dedup mode in force (1 for the mode label)");
        for (DedupMode m : DedupMode.values()) {
            b.append("bridgefs_dedup_mode{mode=\"").append(m.label()).append("\"} ").append(m == s.dedupMode() ? 1 : 0).append('\n');
        }
        gauge(b, "dedup_pages_shared", "Frames that more than one key maps onto (merge)", s.dedupPagesShared());
        gauge(b, "dedup_pages_sharing", "Keys beyond the first on merged frames (merge); resident pages that were duplicates when filled (shadow: what merge would share)", s.dedupPagesSharing());
        gauge(b, "dedup_saved_bytes", "Memory that merging saves (merge) or would save (shadow)", s.dedupSavedBytes());
        header(b, "dedup_cow_breaks_total", "counter", "Writes to a merged page that copied it first");
        b.append("bridgefs_dedup_cow_breaks_total ").append(s.dedupCowBreaks()).append('\n');
        gauge(b, "cache_capacity_bytes", "Configured cache size", s.capacityBytes());
        gauge(b, "backing_direct_io", "1 if every open backing file bypasses the host page cache (O_DIRECT)", s.directIo() ? 1 : 0);
        header(b, "writeback_bytes_total", "counter", "Bytes written back to backing storage");
        b.append("bridgefs_writeback_bytes_total ").append(s.writebackBytes()).append('\n');
        header(b, "writeback_rewritten_bytes_total", "counter", "Bytes the background flusher wrote back that were written again while still cached");
        b.append("bridgefs_writeback_rewritten_bytes_total ").append(s.writebackRewrittenBytes()).append('\n');
        gauge(b, "dirty_background_bytes", "Dirty bytes above which the background flusher writes back now (moves with --dirty-background auto)", s.dirtyBackgroundBytes());
        header(b, "evictions_total", "counter", "Pages evicted");
        b.append("bridgefs_evictions_total ").append(s.evictions()).append('\n');
        header(b, "readahead_bytes_total", "counter", "Bytes read ahead of sequential requests");
        b.append("bridgefs_readahead_bytes_total ").append(s.readaheadBytes()).append('\n');
        header(b, "readahead_unused_bytes_total", "counter", "Bytes read ahead and evicted without ever being read");
        b.append("bridgefs_readahead_unused_bytes_total ").append(s.readaheadUnusedBytes()).append('\n');
        byType(b, "9p_requests_total", "9P requests by message type", p9Requests);
        return b.toString();
    }

    /** A counter labelled by 9P message type, left out while no request was counted. */
    private static void byType(StringBuilder b, String name, String help, java.util.Map<String, Long> counts) {
        if (counts.isEmpty()) return;
        header(b, name, "counter", help);
        counts.forEach((t, n) -> b.append("bridgefs_").append(name).append("{type=\"").append(t).append("\"} ").append(n).append('\n'));
    }

    /** A JSON object of counts by name. */
    private static void counts(StringBuilder b, java.util.Map<String, Long> counts) {
        b.append('{');
        int k = 0;
        for (var e : counts.entrySet()) {
            if (k++ > 0) b.append(',');
            b.append('"').append(escape(e.getKey())).append("\":").append(e.getValue());
        }
        b.append('}');
    }

    private static void header(StringBuilder b, String name, String type, String help) {
        b.append("# HELP bridgefs_").append(name).append(' ').append(help).append('\n');
        b.append("# TYPE bridgefs_").append(name).append(' ').append(type).append('\n');
    }

    private static void ioCounter(StringBuilder b, String name, String help, List<IoMetrics> io,
                                  java.util.function.ToLongFunction<IoMetrics> f) {
        header(b, name, "counter", help);
        for (IoMetrics m : io) {
            b.append("bridgefs_").append(name).append(labels(m)).append(' ').append(f.applyAsLong(m)).append('\n');
        }
    }

    private static void latency(StringBuilder b, String op, List<IoMetrics> io, java.util.function.Function<IoMetrics, Timer> f) {
        String name = op + "_latency_seconds";
        header(b, name, "summary", "Latency of client " + op + " requests");
        for (IoMetrics m : io) {
            Timer t = f.apply(m);
            Snapshot snap = t.getSnapshot();
            String l = labels(m);
            String inner = l.substring(1, l.length() - 1);
            for (double q : new double[] {0.5, 0.99}) {
                b.append("bridgefs_").append(name).append("{").append(inner).append(",quantile=\"").append(q).append("\"} ")
                        .append(String.format(Locale.ROOT, "%.9f", snap.getValue(q) / 1e9)).append('\n');
            }
            b.append("bridgefs_").append(name).append("_count").append(l).append(' ').append(t.getCount()).append('\n');
        }
    }

    private static void perPath(StringBuilder b, String name, String help, long[] values) {
        header(b, name, "counter", help);
        for (IoPath p : IoPath.values()) {
            b.append("bridgefs_").append(name).append("{path=\"").append(p.label()).append("\"} ").append(values[p.ordinal()]).append('\n');
        }
    }

    private static void perPathValues(StringBuilder b, String name, long[] values) {
        for (IoPath p : IoPath.values()) {
            b.append("bridgefs_").append(name).append("{path=\"").append(p.label()).append("\"} ").append(values[p.ordinal()]).append('\n');
        }
    }

    private static void gauge(StringBuilder b, String name, String help, long v) {
        header(b, name, "gauge", help);
        b.append("bridgefs_").append(name).append(' ').append(v).append('\n');
    }

    private static String labels(IoMetrics m) {
        return "{path=\"" + m.path + "\",export=\"" + escape(m.export) + "\"}";
    }

    static String escape(String s) {
        return s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
    }

    /** The same counters as one JSON object (for /stats and `bridgefs stats`). */
    public static String json(CacheStats s, List<IoMetrics> io, java.util.Map<String, Long> p9Requests) {
        return json(s, io, p9Requests, null);
    }

    public static String json(CacheStats s, List<IoMetrics> io, java.util.Map<String, Long> p9Requests, ServerState server) {
        StringBuilder b = new StringBuilder(2048).append('{');
        b.append("\"cache\":{");
        for (IoPath p : IoPath.values()) {
            b.append('"').append(p.label()).append("\":{\"cache_hits\":").append(s.hits(p))
                    .append(",\"cache_misses\":").append(s.misses(p))
                    .append(",\"cache_fills\":").append(s.fills(p))
                    .append(",\"cache_fill_bytes\":").append(s.fillBytes(p))
                    .append(",\"refaults\":").append(s.refaults(p))
                    .append(",\"duplicate_fills\":").append(s.duplicateFills(p))
                    .append(",\"duplicate_fill_bytes\":").append(s.duplicateFillBytes(p)).append("},");
        }
        b.append("\"cross_path_hits\":{\"nbd_to_9p\":").append(s.crossPathHits(IoPath.NBD, IoPath.NINEP))
                .append(",\"9p_to_nbd\":").append(s.crossPathHits(IoPath.NINEP, IoPath.NBD)).append("},")
                .append("\"shared_pages\":").append(s.sharedPages())
                .append(",\"cached_bytes\":").append(s.cachedBytes())
                .append(",\"dirty_bytes\":").append(s.dirtyBytes())
                .append(",\"writeback_bytes\":").append(s.writebackBytes())
                .append(",\"writeback_rewritten_bytes\":").append(s.writebackRewrittenBytes())
                .append(",\"dirty_background_bytes\":").append(s.dirtyBackgroundBytes())
                .append(",\"pinned_pages\":").append(s.pinnedPages())
                .append(",\"zero_pages\":").append(s.zeroPages())
                .append(",\"resident_pages\":").append(s.residentPages())
                .append(",\"dedup_mode\":\"").append(s.dedupMode().label()).append('"')
                .append(",\"dedup_pages_shared\":").append(s.dedupPagesShared())
                .append(",\"dedup_pages_sharing\":").append(s.dedupPagesSharing())
                .append(",\"dedup_cow_breaks\":").append(s.dedupCowBreaks())
                .append(",\"dedup_saved_bytes\":").append(s.dedupSavedBytes())
                .append(",\"evictions\":").append(s.evictions())
                .append(",\"readahead_bytes\":").append(s.readaheadBytes())
                .append(",\"readahead_unused_bytes\":").append(s.readaheadUnusedBytes())
                .append(",\"capacity_bytes\":").append(s.capacityBytes())
                .append(",\"direct_io\":").append(s.directIo()).append("},\"io\":[");
        for (int i = 0; i < io.size(); i++) {
            IoMetrics m = io.get(i);
            if (i > 0) b.append(',');
            b.append("{\"path\":\"").append(m.path).append("\",\"export\":\"").append(escape(m.export))
                    .append("\",\"kind\":\"").append(m.kind)
                    .append("\",\"read_ops\":").append(m.read.getCount())
                    .append(",\"read_bytes\":").append(m.readBytes.getCount())
                    .append(",\"batched_reads\":").append(m.batchedReads.getCount())
                    .append(",\"write_ops\":").append(m.write.getCount())
                    .append(",\"write_bytes\":").append(m.writeBytes.getCount())
                    .append(",\"flush_ops\":").append(m.flush.getCount())
                    .append(",\"trim_ops\":").append(m.trim.getCount())
                    .append(",\"errors\":").append(m.errors.getCount()).append('}');
        }
        b.append("],\"9p_requests\":");
        counts(b, p9Requests);
        if (server != null) {
            b.append(",\"server\":{");
            for (IoPath p : IoPath.values()) {
                b.append("\"connections_").append(p.label()).append("\":").append(server.connections()[p.ordinal()]).append(',')
                        .append("\"connections_refused_").append(p.label()).append("\":").append(server.refused()[p.ordinal()]).append(',')
                        .append("\"connections_timed_out_").append(p.label()).append("\":").append(server.timedOut()[p.ordinal()]).append(',');
            }
            b.append("\"open_descriptors\":").append(server.openDescriptors())
                    .append(",\"9p_fids\":").append(server.fids())
                    .append(",\"request_memory_bytes\":").append(server.requestMemory())
                    .append(",\"request_memory_limit_bytes\":").append(server.requestMemoryLimit())
                    .append(",\"tls_handshakes_ok\":").append(server.tlsHandshakesOk())
                    .append(",\"tls_handshakes_failed\":").append(server.tlsHandshakesFailed())
                    .append(",\"tls_connections\":").append(server.tlsConnections())
                    .append(",\"9p_request_seconds\":{");
            int q = 0;
            for (var e : server.p9Latency().entrySet()) {
                if (q++ > 0) b.append(',');
                b.append('"').append(escape(e.getKey())).append("\":{\"p50\":")
                        .append(String.format(java.util.Locale.ROOT, "%.9f", e.getValue()[0])).append(",\"p99\":")
                        .append(String.format(java.util.Locale.ROOT, "%.9f", e.getValue()[1])).append('}');
            }
            b.append("},\"9p_requests_fast\":");
            counts(b, server.p9Fast());
            b.append('}');
        }
        return b.append('}').toString();
    }
}
