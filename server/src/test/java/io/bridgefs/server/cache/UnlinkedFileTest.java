package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A file no name leads to any more can never be read again once its last reference goes: its pages,
 * dirty or not, are dropped at that close instead of written back. A file with another name, or one
 * still open through another reference, keeps its data.
 */
class UnlinkedFileTest {
    static final int P = PageCache.PAGE_SIZE;

    static CachedFile dirtyFile(PageCache cache, Path p, int pages, int value) throws Exception {
        Files.write(p, new byte[0]);
        CachedFile f = cache.open(p, false);
        byte[] b = new byte[pages * P];
        java.util.Arrays.fill(b, (byte) value);
        f.write(IoPath.NINEP, 0, ByteBuffer.wrap(b), false);
        return f;
    }

    @Test
    void theLastCloseOfARemovedFileDropsItsPagesAndWritesNothingBack(@TempDir Path dir) throws Exception {
        try (PageCache cache = new PageCache(256 * P, CacheMode.WRITEBACK)) {
            CachedFile f = dirtyFile(cache, dir.resolve("gone"), 32, 1);
            assertEquals(32L * P, cache.snapshot().dirtyBytes());
            Files.delete(dir.resolve("gone"));
            f.close();
            assertEquals(0, cache.snapshot().writebackBytes(), "nothing written back to a removed file");
            assertEquals(0, cache.snapshot().dirtyBytes());
            assertEquals(0, cache.snapshot().cachedBytes(), "its pages are free again");
            assertEquals(0, cache.snapshot().pinnedPages());
            assertTrue(cache.verify().isEmpty(), String.join("\n", cache.verify()));

            CachedFile kept = dirtyFile(cache, dir.resolve("kept"), 8, 2);       // the control: still named
            kept.close();
            assertEquals(8L * P, cache.snapshot().writebackBytes());
            assertEquals(2, Files.readAllBytes(dir.resolve("kept"))[8 * P - 1]);
        }
    }

    @Test
    void aFileWithAnotherNameOrAnotherReferenceKeepsItsData(@TempDir Path dir) throws Exception {
        try (PageCache cache = new PageCache(256 * P, CacheMode.WRITEBACK)) {
            CachedFile f = dirtyFile(cache, dir.resolve("a"), 4, 3);
            Files.createLink(dir.resolve("b"), dir.resolve("a"));
            Files.delete(dir.resolve("a"));
            f.close();
            assertEquals(3, Files.readAllBytes(dir.resolve("b"))[4 * P - 1], "written back: a name still leads to it");

            CachedFile g = dirtyFile(cache, dir.resolve("c"), 4, 4);
            CachedFile again = cache.open(dir.resolve("c"), false);                 // a second reference (an open fid)
            Files.delete(dir.resolve("c"));
            g.close();
            ByteBuffer back = ByteBuffer.allocate(4 * P);
            again.read(IoPath.NINEP, 0, back);
            assertEquals(4, back.get(4 * P - 1), "removed but still open: it reads what was written");
            long before = cache.snapshot().writebackBytes();
            again.close();
            assertEquals(before, cache.snapshot().writebackBytes(), "its last close writes nothing back");
            assertEquals(0, cache.snapshot().dirtyBytes());
        }
    }
}
