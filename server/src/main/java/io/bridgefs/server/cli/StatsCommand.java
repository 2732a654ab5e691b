package io.bridgefs.server.cli;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code bridgefs stats}: the live counters of a running server as a table, from its /metrics. */
@Command(name = "stats", description = "Show the live counters of a running bridgefs (per path, cross-path, duplicates, residency).")
public final class StatsCommand implements Callable<Integer> {

    @Option(names = "--url", paramLabel = "URL", defaultValue = "http://127.0.0.1:9180",
            description = "The server's metrics listener (default: ${DEFAULT-VALUE}).")
    String url;

    @Option(names = "--watch", paramLabel = "SECONDS", arity = "0..1", fallbackValue = "2",
            description = "Refresh every SECONDS (default 2) until interrupted.")
    Integer watch;

    @Option(names = {"-h", "--help"}, usageHelp = true, description = "Show this help.")
    boolean help;

    @Override
    public Integer call() throws Exception {
        HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        String base = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
        while (true) {
            String text;
            try {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics"))
                        .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() != 200) throw new IllegalStateException("HTTP " + r.statusCode());
                text = r.body();
            } catch (java.io.IOException | IllegalStateException e) {
                System.err.println("bridgefs: cannot read " + base + "/metrics: " + e.getMessage());
                return 1;
            }
            if (watch != null) System.out.print("\033[H\033[2J");
            System.out.print(render(parse(text)));
            System.out.flush();
            if (watch == null) return 0;
            Thread.sleep(Math.max(1, watch) * 1000L);
        }
    }

    /** Metric lines of the Prometheus text, name{labels} to value. */
    static Map<String, Double> parse(String text) {
        Map<String, Double> m = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            if (line.isEmpty() || line.startsWith("#")) continue;
            int sp = line.lastIndexOf(' ');
            if (sp < 0) continue;
            try {
                m.put(line.substring(0, sp), Double.parseDouble(line.substring(sp + 1)));
            } catch (NumberFormatException ignored) {
                // not a sample line
            }
        }
        return m;
    }

    static String render(Map<String, Double> m) {
        StringBuilder b = new StringBuilder();
        b.append(String.format(Locale.ROOT, "%-24s %14s %14s%n", "per path", "nbd", "9p"));
        for (String c : new String[] {"cache_hits_total", "cache_misses_total", "cache_fills_total", "cache_fill_bytes_total",
                "refaults_total", "duplicate_fills_total", "duplicate_fill_bytes_total"}) {
            b.append(String.format(Locale.ROOT, "%-24s %14s %14s%n", c.replace("_total", ""),
                    num(m.get("bridgefs_" + c + "{path=\"nbd\"}"), c), num(m.get("bridgefs_" + c + "{path=\"9p\"}"), c)));
        }
        b.append(String.format(Locale.ROOT, "%nper export%n%-6s %-16s %12s %12s %12s %12s%n", "path", "export", "read ops", "read bytes", "write ops", "write bytes"));
        for (Map.Entry<String, Double> e : m.entrySet()) {
            String k = e.getKey();
            if (!k.startsWith("bridgefs_read_ops_total{")) continue;
            String labels = k.substring(k.indexOf('{'));
            String path = label(labels, "path"), export = label(labels, "export");
            b.append(String.format(Locale.ROOT, "%-6s %-16s %12s %12s %12s %12s%n", path, export.isEmpty() ? "\"\"" : export,
                    num(e.getValue(), "ops"), num(m.get("bridgefs_read_bytes_total" + labels), "bytes"),
                    num(m.get("bridgefs_write_ops_total" + labels), "ops"), num(m.get("bridgefs_write_bytes_total" + labels), "bytes")));
        }
        b.append(String.format(Locale.ROOT, "%ncross-path hits: nbd->9p %s, 9p->nbd %s; shared pages %s%n",
                num(m.get("bridgefs_cross_path_hits_total{from=\"nbd\",to=\"9p\"}"), "n"),
                num(m.get("bridgefs_cross_path_hits_total{from=\"9p\",to=\"nbd\"}"), "n"), num(m.get("bridgefs_shared_pages"), "n")));
        if (Double.valueOf(1).equals(m.get("bridgefs_dedup_mode{mode=\"merge\"}"))) {
            b.append(String.format(Locale.ROOT, "merged (dedup merge): %s frames shared by %s more pages, saving %s; copy-on-write breaks %s%n",
                    num(m.get("bridgefs_dedup_pages_shared"), "n"), num(m.get("bridgefs_dedup_pages_sharing"), "n"),
                    num(m.get("bridgefs_dedup_saved_bytes"), "bytes"), num(m.get("bridgefs_dedup_cow_breaks_total"), "n")));
        } else {
            b.append(String.format(Locale.ROOT, "duplicates: %s resident pages were already in memory when filled; merging would save %s%n",
                    num(m.get("bridgefs_dedup_pages_sharing"), "n"), num(m.get("bridgefs_dedup_saved_bytes"), "bytes")));
        }
        b.append(String.format(Locale.ROOT, "residency: cached %s of %s, dirty %s, zero pages %s, pinned %s, evictions %s%n",
                num(m.get("bridgefs_cached_bytes"), "bytes"), num(m.get("bridgefs_cache_capacity_bytes"), "bytes"),
                num(m.get("bridgefs_dirty_bytes"), "bytes"), num(m.get("bridgefs_zero_pages"), "n"),
                num(m.get("bridgefs_pinned_pages"), "n"), num(m.get("bridgefs_evictions_total"), "n")));
        StringBuilder lat = new StringBuilder();
        for (Map.Entry<String, Double> e : m.entrySet()) {
            String k = e.getKey();
            if (!k.startsWith("bridgefs_9p_request_seconds{") || !k.contains("quantile=\"0.5\"")) continue;
            String type = label(k.substring(k.indexOf('{')), "type");
            Double p99 = m.get(k.replace("quantile=\"0.5\"", "quantile=\"0.99\""));
            lat.append(String.format(Locale.ROOT, " %s %.3f/%.3f", type, e.getValue() * 1000, p99 == null ? 0 : p99 * 1000));
        }
        if (lat.length() > 0) b.append("9P server time per request, p50/p99 ms:").append(lat).append('\n');
        b.append(String.format(Locale.ROOT, "write-back: %s written, %s of what the background flusher wrote written again; it starts above %s dirty%n",
                num(m.get("bridgefs_writeback_bytes_total"), "bytes"), num(m.get("bridgefs_writeback_rewritten_bytes_total"), "bytes"),
                num(m.get("bridgefs_dirty_background_bytes"), "bytes")));
        b.append(String.format(Locale.ROOT, "read-ahead: %s read ahead, %s of it evicted unread%n",
                num(m.get("bridgefs_readahead_bytes_total"), "bytes"), num(m.get("bridgefs_readahead_unused_bytes_total"), "bytes")));
        return b.toString();
    }

    private static String label(String labels, String name) {
        int i = labels.indexOf(name + "=\"");
        if (i < 0) return "";
        int s = i + name.length() + 2;
        return labels.substring(s, labels.indexOf('"', s));
    }

    private static String num(Double v, String kind) {
        if (v == null) return "-";
        long n = v.longValue();
        if (!kind.contains("bytes")) return String.valueOf(n);
        return io.bridgefs.server.config.Sizes.human(n);
    }
}
