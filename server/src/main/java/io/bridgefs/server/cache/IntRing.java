package io.bridgefs.server.cache;

/** A FIFO of frame numbers in a fixed ring (each frame is in at most one queue, so it never overflows). */
final class IntRing {
    private final int[] ring;
    private int head, size;

    long heapBytes() { return 4L * ring.length; }

    IntRing(int capacity) { ring = new int[Math.max(1, capacity)]; }

    void add(int v) {
        ring[(head + size) % ring.length] = v;
        size++;
    }

    int poll() {
        int v = ring[head];
        head = (head + 1) % ring.length;
        size--;
        return v;
    }

    int size() { return size; }
}
