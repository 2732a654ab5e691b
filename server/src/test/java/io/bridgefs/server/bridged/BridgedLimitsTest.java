package io.bridgefs.server.bridged;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.cache.Readahead;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import io.bridgefs.server.HeapProbe;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A bridged tree's memory is bounded: a tree of more names than the export's {@code entries=} is refused
 * at open and at a rescan (which keeps the previous snapshot), and an entry takes no more heap than the
 * JVM's sizing gives it ({@link HostTree#ENTRY_HEAP_BYTES}). Without the bound, anyone who can create
 * files in the directory (a guest over 9P, say) could make the next rescan exhaust the server's heap.
 */
class BridgedLimitsTest {

    @Test
    void aTreeOverItsEntryLimitIsRefusedAndARescanKeepsThePreviousSnapshot(@TempDir Path tmp) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("tree"));
        Path sub = Files.createDirectories(root.resolve("sub"));
        for (int i = 0; i < 90; i++) Files.writeString(sub.resolve("f" + i), "file " + i);     // 91 names
        try (PageCache cache = new PageCache(4 << 20, CacheMode.WRITEBACK)) {
            IOException e = assertThrows(IOException.class, () -> BridgedDisk.open(cache, root, "small", Readahead.OFF, 90));
            assertTrue(e.getMessage().contains("more than 90 entries") && e.getMessage().contains("entries="), e.getMessage());
            try (BridgedDisk disk = BridgedDisk.open(cache, root, "small", Readahead.OFF, 100)) {
                assertEquals(92, disk.image().tree.entries(), "91 names and the image's lost+found");
                long size = disk.size();
                // one directory past the limit on its own: refused before its names are all listed
                Path big = Files.createDirectories(root.resolve("big"));
                for (int i = 0; i < 50; i++) Files.createFile(big.resolve("g" + i));
                e = assertThrows(IOException.class, disk::rescanIfIdle);
                assertTrue(e.getMessage().contains("more than 100 entries"), e.getMessage());
                assertEquals(92, disk.image().tree.entries(), "the previous snapshot stays");
                assertEquals(size, disk.size());
            }
        }
    }

    @Test
    void anEntryTakesNoMoreHeapThanTheSizingGivesIt(@TempDir Path tmp) throws Exception {
        // a tree shaped like a system's: paths of some 45 bytes, a file per 25 entries with data
        Path root = Files.createDirectories(tmp.resolve("tree"));
        int n = 0;
        for (int d = 0; d < 40; d++) {
            Path dir = Files.createDirectories(root.resolve("package-" + d).resolve("share/doc"));
            n += 3;
            for (int i = 0; i < 500; i++) {
                Path f = dir.resolve("changelog-entry-" + i + ".txt");
                if (i % 25 == 0) Files.writeString(f, "some text " + i);
                else Files.createFile(f);
                n++;
            }
        }
        try (PageCache cache = new PageCache(4 << 20, CacheMode.WRITEBACK)) {
            long before = HeapProbe.usedHeapAfterGc();
            try (BridgedDisk disk = BridgedDisk.open(cache, root, "heap", Readahead.OFF)) {
                long perEntry = (HeapProbe.usedHeapAfterGc() - before) / n;
                assertEquals(n + 1, disk.image().tree.entries(), "and lost+found");
                System.out.println("heap per bridged tree entry: " + perEntry + " bytes");
                assertTrue(perEntry <= HostTree.ENTRY_HEAP_BYTES,
                        "an entry takes " + perEntry + " bytes of heap, the sizing gives it " + HostTree.ENTRY_HEAP_BYTES);
            }
        }
    }
}
