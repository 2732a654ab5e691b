package io.bridgefs.server.net;

import static org.junit.jupiter.api.Assertions.*;

import net.jqwik.api.*;
import net.jqwik.api.constraints.*;

/** The guard's pace rule: who is cut off at a look, and who never is. */
class PaceProperties {
    static final long S = 1_000_000_000L;
    static final long STALL = 60 * S;
    static final long LOOK = 5 * S;
    static final long MIB = 1 << 20;

    private static Pace.Look replies(boolean othersWait, long queuedBefore, long taken) {
        return new Pace.Look(LOOK, othersWait, -1, 0, 0, true, queuedBefore, taken);
    }

    private static Pace.Look frame(boolean othersWait, long ageNanos, long left, long read) {
        return new Pace.Look(LOOK, othersWait, ageNanos, left, read, true, 0, 0);
    }

    @Property
    void nobodyIsCutOffWhileNobodyWaitsUnlessAFrameOutlivesTheStallTimeout(
            @ForAll @LongRange(min = -1, max = 120 * S) long age, @ForAll @LongRange(min = 0, max = 64 * MIB) long left,
            @ForAll @LongRange(min = 0, max = 64 * MIB) long read, @ForAll boolean holds,
            @ForAll @LongRange(min = 0, max = 64 * MIB) long queued, @ForAll @LongRange(min = 0, max = 64 * MIB) long taken) {
        String why = Pace.verdict(new Pace.Look(LOOK, false, age, left, read, holds, queued, taken), STALL);
        assertEquals(age >= STALL, why != null, String.valueOf(why));
    }

    @Property
    void aClientThatTookWhatItHadQueuedIsNeverCutOffForItsReplies(
            @ForAll @LongRange(min = 0, max = 1L << 40) long queued, @ForAll @LongRange(min = 0, max = 1L << 40) long more) {
        assertNull(Pace.verdict(replies(true, queued, queued + more), STALL));
    }

    @Property
    void repliesAreCutOffExactlyWhenThePaceWouldNotDrainTheQueueWithinTheStallTimeout(
            @ForAll @LongRange(min = 1, max = 1L << 36) long queued, @ForAll @LongRange(min = 0, max = 1L << 36) long taken) {
        String why = Pace.verdict(replies(true, queued, taken), STALL);
        boolean tooSlow = (double) taken * (STALL / LOOK) < queued;
        assertEquals(tooSlow, why != null, queued + " queued, " + taken + " taken: " + why);
        if (tooSlow) assertTrue(why.contains(taken == 0 ? "took none" : "took " + taken), why);
    }

    @Property
    void aFrameIsCutOffExactlyWhenItsRestWouldComeAfterTheStallTimeout(
            @ForAll @LongRange(min = 5 * S, max = 59 * S) long age, @ForAll @LongRange(min = 1, max = 32 * MIB) long left,
            @ForAll @LongRange(min = 0, max = 32 * MIB) long read) {
        String why = Pace.verdict(frame(true, age, left, read), STALL);
        boolean tooSlow = read == 0 || age + (double) left * LOOK / read > STALL;
        assertEquals(tooSlow, why != null, age / S + " s old, " + left + " left, " + read + " read: " + why);
    }

    @Property
    void aFrameBegunSinceTheLastLookIsNotJudgedYet(@ForAll @LongRange(min = 0, max = LOOK - 1) long age,
                                                   @ForAll @LongRange(min = 1, max = 32 * MIB) long left) {
        assertNull(Pace.verdict(frame(true, age, left, 0), STALL));
    }

    @Example
    void theDripsOfTheAbuseTestsAreCutOffAndAnHonestSlowLinkIsNot() {
        // 64 KiB a second against 62 MiB of queued replies; against a 32 MiB write announced 10 s ago
        assertNotNull(Pace.verdict(replies(true, 62 * MIB, 320 * 1024), STALL));
        assertNotNull(Pace.verdict(frame(true, 10 * S, 31 * MIB, 320 * 1024), STALL));
        // 2 MiB a second: 24 MiB of replies take 12 s; the rest of a 32 MiB write, 16 s more
        assertNull(Pace.verdict(replies(true, 24 * MIB, 10 * MIB), STALL));
        assertNull(Pace.verdict(frame(true, 10 * S, 32 * MIB - 20 * MIB, 10 * MIB), STALL));
        // nobody waits: the same drips are left alone
        assertNull(Pace.verdict(replies(false, 62 * MIB, 320 * 1024), STALL));
        assertNull(Pace.verdict(frame(false, 10 * S, 31 * MIB, 320 * 1024), STALL));
    }
}
