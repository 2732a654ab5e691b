package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import org.junit.jupiter.api.Test;

/** Background read-ahead must never leave a page pinned, also when the backing store fails. */
class ReadaheadRegressionTest {
    @Test
    void failingReadWithReadaheadLeavesNothingPinned() throws Exception {
        PageCache cache = new PageCache(64 * 4096, CacheMode.WRITEBACK);
        MemStore store = new MemStore(20_000);
        CachedFile f = cache.open(new FileKey(1, 1), store, false);
        f.write(IoPath.NBD, 45057, ByteBuffer.wrap(new byte[] {1}), false);
        f.write(IoPath.NBD, 32768, ByteBuffer.wrap(new byte[] {2}), false);
        store.failReads = true;
        assertThrows(IOException.class, () -> f.read(IoPath.NBD, 36864, ByteBuffer.allocate(1)));
        cache.quiesce();
        store.failReads = false;
        assertEquals(0, cache.snapshot().pinnedPages());
    }
}
