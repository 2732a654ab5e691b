package io.bridgefs.server.posix;

import static org.junit.jupiter.api.Assertions.*;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.bridgefs.server.ProcStat;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * {@link Posix#keepFreedMemory}: memory malloc'd and freed in 64 KiB blocks (what Netty's receive
 * buffers are when its pools run dry) is reused without being faulted in again. Without the setting,
 * glibc gives the 8 MiB back to the kernel on every round and each page faults anew.
 */
class KeepFreedMemoryTest {
    static final int BLOCK = 64 << 10, BLOCKS = 128, ROUNDS = 20, PAGE = 4096;   // 8 MiB a round: under the threshold

    @Test
    void blocksFreedAndMallocdAgainAreNotFaultedInAgain() throws Exception {
        assertTrue(Posix.keepFreedMemory(), "glibc's mallopt accepted the thresholds");
        round();                                  // the first round faults the heap in
        long before = minorFaults();
        for (int r = 1; r < ROUNDS; r++) round();
        long faults = minorFaults() - before;
        long touched = (long) (ROUNDS - 1) * BLOCKS * (BLOCK / PAGE);
        System.out.printf("keepFreedMemory: %d minor faults for %d pages touched again%n", faults, touched);
        assertTrue(faults < touched / 10, faults + " minor faults for " + touched + " pages malloc'd, freed and malloc'd again");
    }

    /** Mallocs 8 MiB in 64 KiB blocks, writes every page, frees them all. */
    private static void round() {
        long[] blocks = new long[BLOCKS];
        for (int i = 0; i < BLOCKS; i++) {
            blocks[i] = Native.malloc(BLOCK);
            assertNotEquals(0, blocks[i]);
            Pointer p = new Pointer(blocks[i]);
            for (int off = 0; off < BLOCK; off += PAGE) p.setByte(off, (byte) 1);
        }
        for (long b : blocks) Native.free(b);
    }

    private static long minorFaults() throws Exception {
        return ProcStat.minorFaults(Path.of("/proc/self"));
    }
}
