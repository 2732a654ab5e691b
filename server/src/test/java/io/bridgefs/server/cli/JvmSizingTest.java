package io.bridgefs.server.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bridgefs.server.bridged.HostTree;
import io.bridgefs.server.cache.DedupMode;
import io.bridgefs.server.cache.MetadataHeap;
import io.bridgefs.server.config.Limits;
import io.bridgefs.server.config.NbdExportSpec;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The heap the re-executed JVM gets covers what the server may hold: the cache's per-page metadata, the
 * closed files it keeps, and each bridged export's tree (twice its entries=, for a rescan), read from
 * the merged arguments as the command will parse them.
 */
class JvmSizingTest {
    @Test
    void bridgedExportsAddTheirTreesToTheHeap() {
        List<String> argv = List.of("serve", "--nbd-export", "disk=/x.img", "--nbd-export=tree=/srv/tree,bridged",
                "--nbd-export", "small=/srv/small,bridged,entries=1000,readahead=off", "--nbd-export", "broken,bridged");
        long entries = JvmSizing.bridgedEntries(argv);
        assertEquals(NbdExportSpec.DEFAULT_MAX_ENTRIES + 1000, entries, "the two bridged exports, not the image nor the bad spec");
        long cache = 256L << 20;
        long without = JvmSizing.heapFor(cache, DedupMode.SHADOW, 0, 0);
        assertTrue(without >= JvmSizing.BASE_HEAP + MetadataHeap.estimate(cache, DedupMode.SHADOW) + (long) MetadataHeap.closedFiles(cache) * 651,
                "room for the per-page arrays and the closed files (651 bytes each measured)");
        assertEquals(2 * entries * HostTree.ENTRY_HEAP_BYTES, JvmSizing.heapFor(cache, DedupMode.SHADOW, entries, 0) - without);
        assertEquals(0, JvmSizing.bridgedEntries(List.of("serve", "--nbd-export", "disk=/x.img")));
    }

    @Test
    void fidsAddTheirHeap() {
        assertEquals(Limits.DEFAULT_MAX_FIDS, JvmSizing.maxFids(List.of("serve")));
        assertEquals(5000, JvmSizing.maxFids(List.of("serve", "--max-fids", "5000")));
        assertEquals(7000, JvmSizing.maxFids(List.of("serve", "--max-fids=5000", "--max-fids=7000")), "the last one wins");
        assertEquals(Limits.DEFAULT_MAX_FIDS, JvmSizing.maxFids(List.of("serve", "--max-fids", "lots")), "the command reports it");
        long cache = 64L << 20;
        assertEquals(5000 * Limits.FID_HEAP_BYTES, JvmSizing.heapFor(cache, DedupMode.OFF, 0, 5000) - JvmSizing.heapFor(cache, DedupMode.OFF, 0, 0));
    }

    @Test
    void theReexecutedJvmGetsWhatTheUserDidNotSet() {
        List<String> none = JvmSizing.addedFlags(List.of("-Dx=y"), 200L << 20, 300L << 20);
        assertEquals(List.of("-Xmx200m", "-XX:MaxDirectMemorySize=300m", "-XX:+ExitOnOutOfMemoryError",
                "-XX:PerMethodTrapLimit=0", "-XX:PerBytecodeTrapLimit=0"), none);
        List<String> own = JvmSizing.addedFlags(List.of("-Xmx1g", "-XX:OnOutOfMemoryError=kill -9 %p", "-XX:PerMethodTrapLimit=100"),
                200L << 20, 300L << 20);
        assertEquals(List.of("-XX:MaxDirectMemorySize=300m", "-XX:PerBytecodeTrapLimit=0"), own, "the user's own flags are kept, not doubled");
    }
}
