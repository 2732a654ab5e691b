package io.bridgefs.server.bridged;

import static io.bridgefs.server.bridged.BridgedImageTest.fds;
import static io.bridgefs.server.bridged.BridgedImageTest.fdsUnder;
import static io.bridgefs.server.bridged.BridgedImageTest.readImage;
import static org.junit.jupiter.api.Assertions.*;

import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.CacheStats;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.cache.Readahead;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Read-ahead across files on the bridged disk: a reader going through the data area one request at a
 * time (a guest's tar) finds the next files' pages read ahead; random reads get none; what is read is
 * what a reader without read-ahead reads; closing while read-ahead runs leaves no descriptor open.
 */
class BridgedReadaheadTest {
    static final int FILES = 300;

    static Path tree(Path tmp) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("tree"));
        Random rnd = new Random(3);
        for (int i = 0; i < FILES; i++) {
            byte[] b = new byte[10_000 + rnd.nextInt(3000)];
            rnd.nextBytes(b);
            Files.write(Files.createDirectories(root.resolve("d" + i % 30)).resolve("f" + i), b);
        }
        return root;
    }

    /** The data area, read in 12 KiB requests in {@code order} (request indexes), each request after the last one's reply. */
    static byte[] readData(BridgedDisk disk, PageCache cache, List<Integer> order, boolean settle) throws Exception {
        Ext4Image img = disk.image();
        long start = img.dataStart * Ext4Image.BS, end = img.usedEnd * Ext4Image.BS;
        int req = 3 * Ext4Image.BS;
        byte[] all = new byte[(int) (end - start)];
        for (int i : order) {
            long at = start + (long) i * req;
            int n = (int) Math.min(req, end - at);
            System.arraycopy(readImage(disk, at, n), 0, all, (int) (at - start), n);
            if (settle) cache.quiesce();     // the read-ahead a reply starts has finished before the next request
        }
        return all;
    }

    static List<Integer> requests(BridgedDisk disk) {
        Ext4Image img = disk.image();
        int n = (int) (((img.usedEnd - img.dataStart) + 2) / 3);
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < n; i++) order.add(i);
        return order;
    }

    @Test
    void aSequentialReaderFindsTheNextFilesReadAheadAndReadsTheSameBytes(@TempDir Path tmp) throws Exception {
        Path root = tree(tmp);
        byte[] plain;
        try (PageCache cache = new PageCache(64 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "plain", Readahead.OFF)) {
            plain = readData(disk, cache, requests(disk), true);
            assertEquals(0, cache.snapshot().readaheadBytes(), "readahead=off reads nothing ahead");
        }
        try (PageCache cache = new PageCache(64 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "ahead", Readahead.auto(true))) {
            List<Integer> order = requests(disk);
            byte[] ahead = readData(disk, cache, order, true);
            assertArrayEquals(plain, ahead, "the data area reads the same with read-ahead across files");
            CacheStats st = cache.snapshot();
            long pages = ahead.length / Ext4Image.BS;
            assertTrue(st.readaheadBytes() >= pages * 4096 * 8 / 10, "most of the data was read ahead: " + st.readaheadBytes() + " of " + ahead.length);
            assertTrue(st.hits(IoPath.NBD) >= pages * 8 / 10, "most of the reader's pages were found resident: " + st.hits(IoPath.NBD) + " of " + pages);
            assertEquals(0, st.readaheadUnusedBytes(), "nothing read ahead was evicted unread");
        }
        assertEquals(0L, fdsUnder(root), "no descriptor into the tree after closing: " + fds());
    }

    /**
     * The data area lies in the order a depth-first walk by name meets the files (tar's, cp -r's), not
     * in the host's directory order: files and directories mixed, created in reverse name order.
     */
    @Test
    void theDataAreaFollowsADepthFirstWalkByName(@TempDir Path tmp) throws Exception {
        Path root = Files.createDirectories(tmp.resolve("tree"));
        for (int i = 40; i >= 0; i--) {
            Path d = i % 3 == 0 ? Files.createDirectories(root.resolve("m" + (char) ('a' + i % 26) + i)) : root;
            for (int j = 6; j >= 0; j--) Files.write(d.resolve("f" + (char) ('a' + (i * 7 + j) % 26) + i + "_" + j), new byte[5000 + 100 * j]);
            if (i % 5 == 0) Files.createDirectories(d.resolve("empty" + i));
        }
        List<String> expected = new ArrayList<>();
        depthFirst(root, "", expected);
        List<String> inData = new ArrayList<>();
        try (PageCache cache = new PageCache(16 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "order", Readahead.OFF)) {
            Ext4Image img = disk.image();
            for (long b = img.dataStart; b < img.usedEnd; b++) {
                String p = img.filePage(b).node().path();
                if (inData.isEmpty() || !inData.get(inData.size() - 1).equals(p)) inData.add(p);
            }
        }
        assertEquals(expected.size(), inData.size(), "every file has its data once");
        assertEquals(expected, inData, "files' data in depth-first name order");
    }

    /** The regular files below {@code dir}, depth-first, each directory's entries by name. */
    static void depthFirst(Path dir, String rel, List<String> out) throws Exception {
        List<Path> entries;
        try (var s = Files.list(dir)) {
            entries = new ArrayList<>(s.sorted().toList());
        }
        for (Path e : entries) {
            String r = rel.isEmpty() ? e.getFileName().toString() : rel + "/" + e.getFileName();
            if (Files.isDirectory(e)) depthFirst(e, r, out);
            else out.add(r);
        }
    }

    @Test
    void randomReadsGetNoReadAhead(@TempDir Path tmp) throws Exception {
        Path root = tree(tmp);
        try (PageCache cache = new PageCache(64 << 20, CacheMode.WRITEBACK);
             BridgedDisk disk = BridgedDisk.open(cache, root, "random", Readahead.auto(true))) {
            List<Integer> order = requests(disk);
            Collections.shuffle(order, new Random(5));
            readData(disk, cache, order, true);
            assertEquals(0, cache.snapshot().readaheadBytes(), "requests in random order read nothing ahead");
        }
    }

    @Test
    void closingWhileReadAheadRunsLeavesNoDescriptor(@TempDir Path tmp) throws Exception {
        Path root = tree(tmp);
        for (int round = 0; round < 5; round++) {
            try (PageCache cache = new PageCache(64 << 20, CacheMode.WRITEBACK);
                 BridgedDisk disk = BridgedDisk.open(cache, root, "close", Readahead.auto(true))) {
                readData(disk, cache, requests(disk).subList(0, 3), false);   // starts read-ahead, not waited for
            }
            assertEquals(0L, fdsUnder(root), "round " + round + ": no descriptor into the tree after closing: " + fds());
        }
    }
}
