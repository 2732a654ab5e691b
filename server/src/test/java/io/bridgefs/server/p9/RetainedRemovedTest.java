package io.bridgefs.server.p9;

import static org.junit.jupiter.api.Assertions.*;

import com.codahale.metrics.MetricRegistry;
import io.bridgefs.server.cache.CacheMode;
import io.bridgefs.server.cache.CachedFile;
import io.bridgefs.server.cache.IoPath;
import io.bridgefs.server.cache.PageCache;
import io.bridgefs.server.metrics.IoMetrics;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Files the server keeps open after their last clunk (for their cached pages) and that are removed on
 * the host, not over 9P, are released by the periodic sweep: the host gets their blocks back, and their
 * pages are dropped, not written back. Files still named stay kept.
 */
class RetainedRemovedTest {
    static final int P = PageCache.PAGE_SIZE;

    /** Descriptors of this process that lead to a removed file under {@code dir}. */
    static long removedOpen(Path dir) throws Exception {
        long n = 0;
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : (Iterable<Path>) fds::iterator) {
                try {
                    String to = Files.readSymbolicLink(fd).toString();
                    if (to.startsWith(dir.toString()) && to.endsWith(" (deleted)")) n++;
                } catch (java.io.IOException gone) {
                    // the listing's own descriptor
                }
            }
        }
        return n;
    }

    @Test
    void keptFilesRemovedOnTheHostAreReleasedAndTheOthersStay(@TempDir Path tmp) throws Exception {
        Path root = tmp.toRealPath();
        ExecutorService executor = Executors.newSingleThreadExecutor();
        try (PageCache cache = new PageCache(256 * P, CacheMode.WRITEBACK)) {
            P9Export e = new P9Export("r", root, false, -1, -1, false, new IoMetrics(new MetricRegistry(), "9p", "r" + System.nanoTime()));
            P9ServerContext ctx = new P9ServerContext(List.of(e), executor, cache, 1 << 20, 8);
            byte[] data = new byte[16 * P];
            for (String name : new String[] {"gone", "kept"}) {
                Files.write(root.resolve(name), new byte[0]);
                CachedFile f = cache.open(root.resolve(name), false);
                f.write(IoPath.NINEP, 0, ByteBuffer.wrap(data), false);      // dirty pages, as a client's writes leave them
                ctx.retain(f);
                f.close();                                                  // the last fid's clunk: only the kept reference holds it
            }
            assertEquals(0, ctx.releaseRemoved(), "both still have their names");
            assertEquals(32L * P, cache.snapshot().dirtyBytes(), "kept, pages and all");

            Files.delete(root.resolve("gone"));                             // by a host process, not over 9P
            assertTrue(removedOpen(root) > 0, "the server still holds the removed file open");
            assertEquals(1, ctx.releaseRemoved());
            assertEquals(0, removedOpen(root), "released: the host has its blocks back");
            assertEquals(16L * P, cache.snapshot().dirtyBytes(), "the removed file's pages dropped, not written back");
            assertEquals(0, cache.snapshot().writebackBytes());
            assertEquals(0, ctx.releaseRemoved(), "the named file stays kept");
            assertTrue(cache.verify().isEmpty(), String.join("\n", cache.verify()));

            ctx.releaseAll();
            assertEquals(16L * P, cache.snapshot().writebackBytes(), "the named file's pages written back at its release");
        } finally {
            executor.shutdownNow();
        }
    }
}
