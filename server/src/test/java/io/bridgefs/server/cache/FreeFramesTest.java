package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.*;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.api.Test;

/** The free-entry bitmap against a sorted-set model, and where a cache puts a file's pages. */
class FreeFramesTest {
    static final int P = PageCache.PAGE_SIZE;

    /** Any sequence of takes (with any hint) and gives answers as "the first free at or after the hint, else the first". */
    @Property(tries = 300)
    void takesTheFirstFreeAtOrAfterTheHint(@ForAll @IntRange(min = 1, max = 9000) int size,
                                           @ForAll @Size(max = 400) List<@IntRange(min = -5, max = 9100) Integer> ops) {
        FreeFrames free = new FreeFrames(size);
        TreeSet<Integer> model = new TreeSet<>();
        for (int f = 0; f < size; f++) model.add(f);
        List<Integer> taken = new ArrayList<>();
        for (int op : ops) {
            if (op % 3 == 0 && !taken.isEmpty()) {          // give one back
                int f = taken.remove(Math.floorMod(op, taken.size()));
                free.give(f);
                model.add(f);
            } else {
                Integer expected = model.isEmpty() ? null : model.ceiling(op < 0 || op >= size ? 0 : op);
                if (expected == null && !model.isEmpty()) expected = model.first();
                int got = free.takeNear(op);
                assertEquals(expected == null ? -1 : expected, got, "take near " + op);
                if (expected != null) {
                    model.remove(expected);
                    taken.add(got);
                }
            }
            assertEquals(model.size(), free.count());
        }
    }

    @Test
    void takesEveryEntryOnceThenNone() {
        FreeFrames free = new FreeFrames(200);
        TreeSet<Integer> seen = new TreeSet<>();
        for (int i = 0; i < 200; i++) assertTrue(seen.add(free.takeNear(137)));
        assertEquals(200, seen.size());
        assertEquals(-1, free.takeNear(0));
    }

    @Test
    void eachFileStartsAfterThePreviousOneAndLargeFilesWrapRound() {
        FreeFrames free = new FreeFrames(100);
        assertEquals(0, free.startFor(30));
        assertEquals(30, free.startFor(0));                 // an empty file still takes one entry's room
        assertEquals(31, free.startFor(60));
        assertEquals(91, free.startFor(1L << 40));          // larger than the cache: the next start wraps to itself
        assertEquals(91, free.startFor(20));
        assertEquals(11, free.startFor(1));
        assertEquals(96, free.takeFor(91, 5));
        assertEquals(1, free.takeFor(91, 10));              // start + page past the end wraps round
    }

    /** Pages filled in random order (random reads) still land on neighbouring frames while the cache has free ones. */
    @Test
    void aFilesPagesLandOnNeighbouringFramesInAnyFillOrder() throws IOException {
        PageCache cache = new PageCache(1024 * P, CacheMode.WRITEBACK);
        CachedFile small = cache.open(new FileKey(1, 1), new MemStore(100 * P), false);
        CachedFile f = cache.open(new FileKey(1, 2), new MemStore(512 * P), false);
        small.readahead(Readahead.OFF);
        f.readahead(Readahead.OFF);
        small.read(IoPath.NBD, 0, ByteBuffer.allocate(100 * P));
        List<Integer> order = new ArrayList<>();
        for (int p = 0; p < 512; p++) order.add(p);
        Collections.shuffle(order, new Random(7));
        for (int p : order) f.read(IoPath.NBD, (long) p * P, ByteBuffer.allocate(P));
        int first = cache.table.get(f.id, 0);
        for (int p = 1; p < 512; p++) assertEquals(first + p, cache.table.get(f.id, p), "page " + p);
        for (int p = 0; p < 100; p++) {
            int fr = cache.table.get(small.id, p);
            assertTrue(fr < first || fr >= first + 512, "the first file's pages keep their own frames");
        }
        assertEquals(List.of(), cache.verify());
    }
}
