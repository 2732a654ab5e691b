package io.bridgefs.server.cache;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/** An in-memory backing store that can be told to fail reads, writes or syncs (an injected EIO). */
final class MemStore implements BackingStore {
    byte[] data;
    long size;
    boolean failReads, failWrites;
    int reads, writes, syncs;
    long stamp = 1;          // (size, mtime, ctime) of a real file: bumped by changes made behind the cache
    boolean closed;

    MemStore(long size) {
        this.data = new byte[(int) size];
        this.size = size;
    }

    /** Widens a race for a test: size() answers, then waits this long before returning. */
    volatile long sizeDelayNanos;

    @Override public long size() {
        long s;
        synchronized (this) {
            s = size;
        }
        if (sizeDelayNanos > 0) java.util.concurrent.locks.LockSupport.parkNanos(sizeDelayNanos);
        return s;
    }

    /** While set and closed, reads wait for it (each first releases a permit of {@code readsAtGate}): I/O in flight for a test. */
    volatile java.util.concurrent.CountDownLatch readGate;
    final java.util.concurrent.Semaphore readsAtGate = new java.util.concurrent.Semaphore(0);

    @Override
    public int read(ByteBuffer dst, long position) throws IOException {
        java.util.concurrent.CountDownLatch gate = readGate;
        if (gate != null) {
            readsAtGate.release();
            try {
                gate.await();
            } catch (InterruptedException e) {
                throw new java.io.InterruptedIOException();
            }
        }
        synchronized (this) {
            if (failReads) throw new IOException("injected read error");
            if (closed) throw new IOException("read after close");
            reads++;
            if (position >= size) return 0;
            int n = (int) Math.min(dst.remaining(), size - position);
            dst.put(data, (int) position, n);
            return n;
        }
    }

    /** Each writePages call (one write-back run): first page and page count. */
    final java.util.List<long[]> runs = new java.util.ArrayList<>();

    @Override
    public void writePages(ByteBuffer[] pages, int count, long position, int lastLength) throws IOException {
        synchronized (this) {
            runs.add(new long[] {position / PageCache.PAGE_SIZE, count});
        }
        BackingStore.super.writePages(pages, count, position, lastLength);
    }

    @Override
    public synchronized void write(ByteBuffer src, long position) throws IOException {
        if (failWrites) throw new IOException("injected write error");
        writes++;
        int n = src.remaining();
        ensure(position + n);
        src.get(data, (int) position, n);
        size = Math.max(size, position + n);
    }

    private void ensure(long cap) {
        if (cap > data.length) data = Arrays.copyOf(data, (int) Math.max(cap, data.length * 2L));
    }

    @Override
    public synchronized void sync() throws IOException {
        if (closed) throw new IOException("sync after close (a real descriptor: EBADF, or another file's)");
        if (failWrites) throw new IOException("injected sync error");
        syncs++;
    }

    @Override
    public synchronized void truncate(long newSize) {
        ensure(newSize);
        if (newSize < size) Arrays.fill(data, (int) newSize, (int) Math.min(data.length, size), (byte) 0);
        size = newSize;
    }

    @Override
    public synchronized boolean punchHole(long offset, long length) throws IOException {
        if (failWrites) throw new IOException("injected punch error");
        long end = Math.min(size, offset + length);
        if (end > offset) Arrays.fill(data, (int) offset, (int) end, (byte) 0);
        return true;
    }

    @Override
    public Extent extentAt(long offset, long limit) {
        return new Extent(limit - offset, false);
    }

    @Override public boolean directIo() { return false; }
    @Override public boolean sparse() { return true; }
    @Override public synchronized long stamp() { return stamp; }
    @Override public synchronized void close() { closed = true; }

    /** Another host process writes {@code bytes} at {@code offset}, behind the cache. */
    synchronized void changeBehindTheCache(long offset, byte[] bytes) {
        ensure(offset + bytes.length);
        System.arraycopy(bytes, 0, data, (int) offset, bytes.length);
        size = Math.max(size, offset + bytes.length);
        stamp++;
    }

    synchronized byte[] contents() {
        return Arrays.copyOf(data, (int) size);
    }
}
