package io.bridgefs.server;

import java.lang.management.ManagementFactory;

/** For tests that measure what a structure holds on the heap: used heap after full collections. */
public final class HeapProbe {
    private HeapProbe() {}

    /** The least used heap seen over four collections (a collection may leave a little behind). */
    public static long usedHeapAfterGc() throws InterruptedException {
        long used = Long.MAX_VALUE;
        for (int i = 0; i < 4; i++) {
            System.gc();
            Thread.sleep(50);
            used = Math.min(used, ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed());
        }
        return used;
    }
}
