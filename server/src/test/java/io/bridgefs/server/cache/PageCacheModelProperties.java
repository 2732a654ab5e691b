package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import net.jqwik.api.*;
import net.jqwik.api.state.Action;
import net.jqwik.api.state.ActionChain;
import net.jqwik.api.state.Transformer;

/**
 * Model-based test of the page cache: random reads, writes, flushes, evictions, truncations and
 * discards on several files through a cache far smaller than the data, compared after every step with
 * a plain byte[] per file. Backing stores inject I/O errors on demand: after a failed flush the cache
 * must still return the new bytes and must not have dropped them (a later good flush writes them).
 * The merge variant builds the files from a few distinct pages, so that fills merge onto shared frames
 * and writes must copy them first; after every step the cache recounts itself ({@link PageCache#verify}).
 */
class PageCacheModelProperties {
    static final int FILES = 3;
    static final int SPAN = 96 * 1024;            // offsets used, per file
    static final long CACHE = 64 * 4096;          // 64 frames: far smaller than 3 x 96 KiB

    /** A few distinct page contents the merge variant builds its files from (index 0: zeros). */
    static final byte[][] POOL = new byte[4][4096];
    static {
        for (int i = 1; i < POOL.length; i++) new java.util.Random(1000 + i).nextBytes(POOL[i]);
    }

    static final class World {
        final PageCache cache;
        final MemStore[] stores = new MemStore[FILES];
        final CachedFile[] files = new CachedFile[FILES];
        final byte[][] model = new byte[FILES][];

        World() {
            this(DedupMode.SHADOW);
        }

        World(DedupMode dedup) {
            cache = new PageCache(CACHE, CacheMode.WRITEBACK, dedup);
            try {
                for (int i = 0; i < FILES; i++) {
                    stores[i] = new MemStore(20_000 + i * 7_000);
                    java.util.Random r = new java.util.Random(i);
                    if (dedup == DedupMode.MERGE) {
                        byte[] d = stores[i].data;
                        for (int off = 0; off < d.length; off += 4096) {
                            System.arraycopy(POOL[r.nextInt(POOL.length)], 0, d, off, Math.min(4096, d.length - off));
                        }
                    } else {
                        r.nextBytes(stores[i].data);
                    }
                    model[i] = stores[i].contents();
                    files[i] = cache.open(new FileKey(1, 100 + i), stores[i], false);
                }
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        }

        byte[] expected(int f, long off, int len) {
            byte[] out = new byte[len];
            byte[] m = model[f];
            for (int i = 0; i < len; i++) {
                long p = off + i;
                out[i] = p < m.length ? m[(int) p] : 0;
            }
            return out;
        }

        byte[] read(int f, long off, int len) throws IOException {
            ByteBuffer b = ByteBuffer.allocate(len);
            files[f].read(IoPath.NBD, off, b);
            return b.array();
        }

        void checkInvariants() {
            cache.quiesce();   // background read-ahead holds pins until its fill completes
            CacheStats s = cache.snapshot();
            assertEquals(0, s.pinnedPages(), "no page may stay pinned between operations");
            assertTrue(s.cachedBytes() <= CACHE);
            assertTrue(s.dirtyBytes() <= s.cachedBytes());
            for (int f = 0; f < FILES; f++) assertEquals(model[f].length, files[f].size(), "size of file " + f);
            assertEquals(java.util.List.of(), cache.verify(), "the counters agree with a recount from the frames");
        }

        @Override
        public String toString() { return "World"; }
    }

    @Property(tries = 150)
    void cacheMatchesModel(@ForAll("chains") ActionChain<World> chain) {
        chain.withInvariant(World::checkInvariants).run();
    }

    @Property(tries = 150)
    void mergingCacheMatchesModel(@ForAll("mergeChains") ActionChain<World> chain) {
        chain.withInvariant(World::checkInvariants).run();
    }

    @Provide
    Arbitrary<ActionChain<World>> chains() {
        return actions(ActionChain.startWith(World::new));
    }

    @Provide
    Arbitrary<ActionChain<World>> mergeChains() {
        return actions(ActionChain.startWith(() -> new World(DedupMode.MERGE))).withAction(3, new WritePoolPageAction());
    }

    private static net.jqwik.api.state.ActionChainArbitrary<World> actions(net.jqwik.api.state.ActionChainArbitrary<World> start) {
        return start
                .withAction(5, new WriteAction())
                .withAction(3, new WriteNoWaitAction())
                .withAction(5, new ReadAction())
                .withAction(1, new FlushAction())
                .withAction(1, new EvictAction())
                .withAction(1, new TruncateAction())
                .withAction(1, new DiscardAction())
                .withAction(1, new FailingFlushAction())
                .withAction(1, new FailingReadAction())
                .withAction(1, new CloseReopenAction())
                .withMaxTransformations(40);
    }

    interface IoStep { void run(World w) throws IOException; }

    static Transformer<World> step(String description, IoStep s) {
        return Transformer.mutate(description, w -> {
            try {
                s.run(w);
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
    }

    static Arbitrary<Integer> file() { return Arbitraries.integers().between(0, FILES - 1); }
    static Arbitrary<Long> offset() {
        return Arbitraries.oneOf(Arbitraries.longs().between(0, SPAN), Arbitraries.longs().between(0, SPAN / 4096).map(p -> p * 4096));
    }
    static Arbitrary<Integer> length() {
        return Arbitraries.oneOf(Arbitraries.integers().between(1, 9000), Arbitraries.of(4096, 8192, 65536));
    }

    static class WriteAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(file(), offset(), length(), Arbitraries.integers()).as((f, off, len, seed) ->
                    step("write f" + f + " @" + off + " +" + len, w -> {
                        byte[] data = new byte[len];
                        new java.util.Random(seed).nextBytes(data);
                        w.files[f].write(IoPath.NBD, off, ByteBuffer.wrap(data), false);
                        if (off + len > w.model[f].length) w.model[f] = Arrays.copyOf(w.model[f], (int) (off + len));
                        System.arraycopy(data, 0, w.model[f], (int) (long) off, len);
                    }));
        }
    }

    /**
     * A write as a network thread makes it: first without waiting (resident pages, or new frames needing
     * no read), and if that declines, having perhaps written part of it, the whole write the usual way.
     */
    static class WriteNoWaitAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(file(), offset(), length(), Arbitraries.integers()).as((f, off, len, seed) ->
                    step("write without waiting f" + f + " @" + off + " +" + len, w -> {
                        byte[] data = new byte[len];
                        new java.util.Random(seed).nextBytes(data);
                        ByteBuffer[] two = {ByteBuffer.wrap(data, 0, len / 2), ByteBuffer.wrap(data, len / 2, len - len / 2)};
                        if (!w.files[f].writeIfNoWait(IoPath.NINEP, off, two)) w.files[f].write(IoPath.NINEP, off, two, false);
                        if (off + len > w.model[f].length) w.model[f] = Arrays.copyOf(w.model[f], (int) (off + len));
                        System.arraycopy(data, 0, w.model[f], (int) (long) off, len);
                    }));
        }
    }

    /** Writes one of the pool pages at a page boundary: content that other pages hold, for later merges. */
    static class WritePoolPageAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(file(), Arbitraries.integers().between(0, SPAN / 4096), Arbitraries.integers().between(0, POOL.length - 1))
                    .as((f, page, which) -> step("write pool page " + which + " to f" + f + " page " + page, w -> {
                        long off = page * 4096L;
                        w.files[f].write(IoPath.NINEP, off, ByteBuffer.wrap(POOL[which]), false);
                        if (off + 4096 > w.model[f].length) w.model[f] = Arrays.copyOf(w.model[f], (int) off + 4096);
                        System.arraycopy(POOL[which], 0, w.model[f], (int) off, 4096);
                    }));
        }
    }

    /**
     * The last reference is closed (dirty pages are written back, clean ones stay cached) and the file is
     * opened again over a fresh store; sometimes another host process changes the file while it is
     * closed, and the reopened file must then read the new bytes, not the cached ones.
     */
    static class CloseReopenAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(file(), Arbitraries.integers().between(-1, SPAN - 64)).as((f, at) ->
                    step("close and reopen f" + f + (at >= 0 ? " after a host change @" + at : ""), w -> {
                        w.files[f].close();
                        MemStore fresh = new MemStore(0);
                        MemStore old = w.stores[f];
                        fresh.data = old.data;
                        fresh.size = old.size;
                        fresh.stamp = old.stamp;
                        w.stores[f] = fresh;
                        if (at >= 0) {
                            byte[] bytes = ("host change " + at).getBytes();
                            fresh.changeBehindTheCache(at, bytes);
                            if (at + bytes.length > w.model[f].length) w.model[f] = Arrays.copyOf(w.model[f], at + bytes.length);
                            System.arraycopy(bytes, 0, w.model[f], at, bytes.length);
                        }
                        w.files[f] = w.cache.open(new FileKey(1, 100 + f), fresh, false);
                    }));
        }
    }

    static class ReadAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(file(), offset(), length()).as((f, off, len) ->
                    step("read f" + f + " @" + off + " +" + len, w ->
                            assertArrayEquals(w.expected(f, off, len), w.read(f, off, len))));
        }
    }

    static class FlushAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return file().map(f -> step("flush f" + f, w -> {
                w.files[f].flush();
                assertArrayEquals(w.model[f], w.stores[f].contents(), "after a flush the backing store holds exactly the model");
            }));
        }
    }

    static class EvictAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return Arbitraries.just(step("evict clean pages", w -> w.cache.dropClean()));
        }
    }

    static class TruncateAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(file(), Arbitraries.longs().between(0, SPAN)).as((f, size) ->
                    step("truncate f" + f + " to " + size, w -> {
                        w.files[f].truncate(size);
                        w.model[f] = Arrays.copyOf(w.model[f], (int) (long) size);
                    }));
        }
    }

    static class DiscardAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(file(), offset(), length()).as((f, off, len) ->
                    step("discard f" + f + " @" + off + " +" + len, w -> {
                        w.files[f].discard(IoPath.NBD, off, len);
                        long end = Math.min(off + len, w.model[f].length);
                        if (end > off) Arrays.fill(w.model[f], (int) (long) off, (int) end, (byte) 0);
                    }));
        }
    }

    static class FailingFlushAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return file().map(f -> step("flush f" + f + " with failing backing writes", w -> {
                boolean hadDirty = w.files[f].dirtyPages > 0;
                w.stores[f].failWrites = true;
                try {
                    w.files[f].flush();
                    assertFalse(hadDirty, "a flush with dirty pages cannot succeed while writes fail");
                } catch (IOException expected) {
                    // the data must still be there: checked by every later read and flush
                } finally {
                    w.stores[f].failWrites = false;
                }
                assertArrayEquals(w.expected(f, 0, w.model[f].length), w.read(f, 0, w.model[f].length),
                        "after a failed flush reads return the new bytes");
            }));
        }
    }

    static class FailingReadAction implements Action.Independent<World> {
        @Override
        public Arbitrary<Transformer<World>> transformer() {
            return Combinators.combine(file(), offset(), length()).as((f, off, len) ->
                    step("read f" + f + " @" + off + " +" + len + " with failing backing reads", w -> {
                        w.stores[f].failReads = true;
                        try {
                            byte[] got = w.read(f, off, len);
                            assertArrayEquals(w.expected(f, off, len), got, "a read that succeeds returns the right bytes");
                        } catch (IOException expected) {
                            // an error, never garbage
                        } finally {
                            w.stores[f].failReads = false;
                        }
                    }));
        }
    }
}
