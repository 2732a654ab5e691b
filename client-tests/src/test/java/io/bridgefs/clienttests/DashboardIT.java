package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The live dashboard in a real browser (headless Chromium): it loads, polls /stats and shows the counters. */
class DashboardIT {

    @Test
    void dashboardShowsLiveCountersInChromium(@TempDir Path dir) throws Exception {
        Tools.require("chromium");
        Tools.sparseImage(dir.resolve("d.img"), 8 << 20, 1, 0, 2 << 20);
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "d=d.img")) {
            Tools.run(Duration.ofSeconds(60), "nbdcopy", s.uri("d"), "null:").ok("nbdcopy");
            long fills = s.metric("bridgefs_cache_fills_total{path=\"nbd\"}");
            assertTrue(fills > 0);
            Path profile = Files.createDirectories(dir.resolve("chromium-profile"));
            Tools.Result r = Tools.run(dir, Duration.ofSeconds(120), List.of("chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--user-data-dir=" + profile, "--virtual-time-budget=4000", "--dump-dom",
                    "http://127.0.0.1:" + s.metricsPort + "/dashboard"));
            String dom = r.ok("chromium --dump-dom").out();
            assertTrue(dom.contains("bridgefs — one host page cache"), dom.length() > 2000 ? dom.substring(0, 2000) : dom);
            Matcher samples = Pattern.compile("data-samples=\"(\\d+)\"").matcher(dom);
            assertTrue(samples.find() && Integer.parseInt(samples.group(1)) >= 2, "the page polled /stats more than once:\n" + dom);
            Matcher shown = Pattern.compile("id=\"nbd-fills\">(\\d+)<").matcher(dom);
            assertTrue(shown.find(), "fills cell present:\n" + dom);
            assertEquals(fills, Long.parseLong(shown.group(1)), "the page shows the server's live fill count");
            assertTrue(dom.contains("<span id=\"error\"></span>"), "no fetch error shown");
        }
    }
}
