package io.bridgefs.clienttests;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** libnbd's nbdinfo against bridgefs: listing, JSON details, allocation map. */
class NbdInfoIT {
    static final long MiB = 1 << 20;

    @Test
    void listJsonAndMap(@TempDir Path dir) throws Exception {
        Tools.require("nbdinfo");
        Tools.sparseImage(dir.resolve("a.img"), 64 * MiB, 1, 0, MiB, 8 * MiB, 2 * MiB);
        Tools.sparseImage(dir.resolve("b.img"), 16 * MiB, 2);
        try (var s = BridgefsProcess.start(dir, "--nbd-export", "a=a.img,description=first image, with a comma",
                "--nbd-export", "b=b.img,ro")) {
            String list = Tools.run(Duration.ofSeconds(30), "nbdinfo", "--list", s.uri("")).ok("nbdinfo --list").out();
            assertTrue(list.contains("export=\"a\""), list);
            assertTrue(list.contains("export=\"b\""), list);
            assertTrue(list.contains("description: first image, with a comma"), list);

            String json = Tools.run(Duration.ofSeconds(30), "nbdinfo", "--json", s.uri("b")).ok("nbdinfo --json").out();
            assertTrue(json.replace(" ", "").contains("\"export-size\":16777216"), json);
            assertTrue(json.replace(" ", "").contains("\"is_read_only\":true"), json);
            assertTrue(json.replace(" ", "").contains("\"can_multi_conn\":true"), json);
            assertTrue(json.replace(" ", "").contains("\"block_size_maximum\":33554432"), json);

            String def = Tools.run(Duration.ofSeconds(30), "nbdinfo", "--size", s.uri("")).ok("nbdinfo --size").out().trim();
            assertEquals(String.valueOf(64 * MiB), def, "the empty name selects the first export");

            String map = Tools.run(Duration.ofSeconds(30), "nbdinfo", "--map", s.uri("a")).ok("nbdinfo --map").out();
            // data at [0,1M) and [8M,10M); holes elsewhere
            assertMapLine(map, 0, MiB, "data");
            assertMapLine(map, MiB, 7 * MiB, "hole,zero");
            assertMapLine(map, 8 * MiB, 2 * MiB, "data");
            assertMapLine(map, 10 * MiB, 54 * MiB, "hole,zero");
        }
    }

    static void assertMapLine(String map, long offset, long length, String kind) {
        for (String line : map.split("\n")) {
            String[] f = line.trim().split("\\s+");
            if (f.length >= 4 && Long.parseLong(f[0]) == offset) {
                assertEquals(length, Long.parseLong(f[1]), "extent length at " + offset + " in\n" + map);
                assertEquals(kind, f[3], "extent kind at " + offset + " in\n" + map);
                return;
            }
        }
        fail("no extent at " + offset + " in\n" + map);
    }
}
