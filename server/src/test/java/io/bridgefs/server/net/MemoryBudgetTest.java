package io.bridgefs.server.net;

import static org.junit.jupiter.api.Assertions.*;

import io.netty.channel.embedded.EmbeddedChannel;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** Large frames' half of the budget, the refusal clock the guard reads, and what a connection tells its guard. */
class MemoryBudgetTest {
    @Test
    void largeFramesTogetherHoldAtMostHalf() {
        MemoryBudget b = new MemoryBudget(1000);
        assertFalse(b.refusedWithin(1_000_000_000L), "nothing refused yet");
        assertTrue(b.tryReserveFrame(300));
        assertTrue(b.tryReserveFrame(200));
        assertFalse(b.tryReserveFrame(1), "frames past half");
        assertTrue(b.refusedWithin(1_000_000_000L), "a refusal is remembered");
        assertTrue(b.tryReserve(400), "the other half is for everything else");
        assertEquals(900, b.used());
        b.frameRead(300);         // read whole: still reserved, as the request's, but no longer a frame's
        assertEquals(900, b.used());
        assertEquals(200, b.frames());
        assertFalse(b.tryReserveFrame(300), "the budget as a whole is full");
        b.release(400);
        assertTrue(b.tryReserveFrame(300));
        b.releaseFrame(300);
        b.releaseFrame(200);
        b.release(300);
        assertEquals(0, b.used());
        assertEquals(0, b.frames());
    }

    @Test
    void aFrameWaiterIsNotCalledBackWhileFramesAreFullEvenIfTheBudgetHasRoom() {
        MemoryBudget b = new MemoryBudget(1000);
        assertTrue(b.tryReserveFrame(500));
        AtomicInteger calls = new AtomicInteger();
        b.whenFrameFits(100, calls::incrementAndGet);
        assertEquals(0, calls.get(), "called at once it would ask again and spin");
        b.frameRead(500);
        assertEquals(1, calls.get(), "called back when the frame was read whole");
        b.release(500);
    }

    @Test
    void aConnectionTellsItsGuardHowLongItsLargeFrameHasBeenUnfinished() throws Exception {
        MemoryBudget b = new MemoryBudget(1 << 20);
        EmbeddedChannel ch = new EmbeddedChannel();
        Admission<Long> a = new Admission<>(ch, b, 4, 1 << 20, r -> r, r -> r, r -> {});
        assertEquals(-1, a.unfinishedFrameNanos());
        assertFalse(a.holdsMemory());
        ch.config().setAutoRead(false);
        assertTrue(a.reserve(100_000, () -> {}));
        assertTrue(ch.config().isAutoRead(), "a reserved frame is read whatever else holds reading back");
        Thread.sleep(20);
        assertTrue(a.unfinishedFrameNanos() >= 20_000_000L);
        assertTrue(a.holdsMemory());
        a.offer(100_000L);        // decoded: a request holding what was reserved
        assertEquals(-1, a.unfinishedFrameNanos());
        assertEquals(0, b.frames());
        assertEquals(100_000, b.used());
        a.done(100_000L);
        assertEquals(0, b.used());
        assertFalse(a.holdsMemory());
    }

    @Test
    void aWaiterCountsAsWantingMemoryUntilCalledBackOrForgotten() {
        MemoryBudget b = new MemoryBudget(1000);
        assertTrue(b.tryReserve(900));
        assertFalse(b.hasWaiters());
        AtomicInteger calls = new AtomicInteger();
        Runnable r = calls::incrementAndGet;
        b.whenAvailable(200, r);
        assertTrue(b.hasWaiters(), "someone wants memory now, however long ago it was refused");
        b.forget(r);              // its connection ended
        assertFalse(b.hasWaiters());
        b.release(900);
        assertEquals(0, calls.get(), "a forgotten waiter is not called back");
        b.whenAvailable(200, r);  // fits now: called at once
        assertEquals(1, calls.get());
        assertFalse(b.hasWaiters());
    }

    @Test
    void aConnectionThatEndsWhileWaitingLeavesTheBudgetsWaiters() {
        MemoryBudget b = new MemoryBudget(1000);
        assertTrue(b.tryReserve(900));
        EmbeddedChannel ch = new EmbeddedChannel();
        Admission<Long> a = new Admission<>(ch, b, 4, 1 << 20, r -> r, r -> 0L, r -> {});
        assertFalse(a.reserve(600, () -> {}), "a large frame that does not fit waits");
        assertTrue(b.hasWaiters());
        a.close();
        assertFalse(b.hasWaiters(), "the guard must not see an ended connection as someone waiting");
        Admission<Long> c = new Admission<>(ch, b, 4, 1 << 20, r -> r, r -> 0L, r -> {});
        c.offer(500L);            // a request that does not fit waits too
        assertTrue(b.hasWaiters());
        c.close();
        assertFalse(b.hasWaiters());
        b.release(900);
        assertEquals(0, b.used());
    }
}
