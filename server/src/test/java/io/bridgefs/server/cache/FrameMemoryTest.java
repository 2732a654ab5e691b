package io.bridgefs.server.cache;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Native;
import com.sun.jna.Pointer;
import io.bridgefs.server.posix.Posix;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** The frames' memory: huge-page backed where the kernel allows it, zeroed, aligned, and given back. */
class FrameMemoryTest {
    private static final int MIB = 1 << 20;

    @Test
    void framesAreAlignedZeroedAndIndependent() {
        int frames = 3 * 1024;   // 12 MiB
        FrameMemory m = new FrameMemory(frames);
        for (int f = 0; f < frames; f += 257) {
            ByteBuffer b = m.frame(f);
            assertEquals(PageCache.PAGE_SIZE, b.capacity());
            assertEquals(0, Pointer.nativeValue(Native.getDirectBufferPointer(b)) % PageCache.PAGE_SIZE, "frame " + f + " aligned for O_DIRECT");
            for (int i = 0; i < PageCache.PAGE_SIZE; i += 8) assertEquals(0, b.getLong(i), "frame " + f + " zeroed");
        }
        m.frame(5).putLong(0, 0x1122334455667788L);
        m.frame(5).putLong(PageCache.PAGE_SIZE - 8, -1L);
        assertEquals(0x1122334455667788L, m.frame(5).getLong(0));
        assertEquals(0, m.frame(4).getLong(PageCache.PAGE_SIZE - 8), "the frame before is untouched");
        assertEquals(0, m.frame(6).getLong(0), "the frame after is untouched");
        assertEquals(-1L, m.span(4, 3).getLong(2 * PageCache.PAGE_SIZE - 8), "a span sees the same bytes");
    }

    @Test
    void hugePageMemoryIsAskedForWhereTheKernelHasIt() throws Exception {
        ByteBuffer b = Posix.hugePageMemory(16 * MIB);
        assertNotNull(b, "mmap of anonymous memory failed on Linux");
        assertEquals(16 * MIB, b.capacity());
        long address = Pointer.nativeValue(Native.getDirectBufferPointer(b));
        String mapping = smapsOf(address);
        assertNotNull(mapping, "the memory is not a mapping of its own in /proc/self/smaps");
        if (Files.exists(Path.of("/sys/kernel/mm/transparent_hugepage"))) {
            assertTrue(mapping.matches("(?s).*\\nVmFlags:[^\\n]* hg.*"), "madvise(MADV_HUGEPAGE) not in effect:\n" + mapping);
        } else {
            System.err.println("FrameMemoryTest: this kernel has no transparent huge pages; only the mapping is checked");
        }
        for (int i = 0; i < b.capacity(); i += 4096) assertEquals(0, b.get(i));
    }

    @Test
    void unreachableMemoryIsUnmapped() throws Exception {
        long address = Pointer.nativeValue(Native.getDirectBufferPointer(Posix.hugePageMemory(8 * MIB)));
        assertNotNull(smapsOf(address));
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (smapsOf(address) != null && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(50);
        }
        assertFalse(smapsOf(address) != null, "8 MiB still mapped 20 s after its buffer became unreachable");
    }

    /** The smaps entry of the mapping that starts at {@code address}, or null. */
    private static String smapsOf(long address) throws Exception {
        String start = Long.toHexString(address) + "-";
        StringBuilder entry = null;
        for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            boolean header = line.matches("^[0-9a-f]+-[0-9a-f]+ .*");
            if (header && entry != null) return entry.toString();
            if (header && line.startsWith(start)) entry = new StringBuilder();
            if (entry != null) entry.append(line).append('\n');
        }
        return entry == null ? null : entry.toString();
    }
}
