package io.bridgefs.server.cache;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Background read-ahead fills: four threads and a queue of 64. A task that does not fit is not run
 * here (its caller decides: fill inline, or skip). Counts what is queued or running, so that tests can
 * wait for a cache at rest and closing can wait for the fills in progress.
 */
final class ReadaheadPool {
    private final AtomicInteger pending = new AtomicInteger();
    private final ThreadPoolExecutor pool = new ThreadPoolExecutor(4, 4, 30, TimeUnit.SECONDS, new ArrayBlockingQueue<>(64),
            io.bridgefs.server.posix.ServerThreads.factory("bridgefs-readahead", false));   // started by a user's request too

    /** Runs {@code task} in the background; false, without running it, if the queue is full or the pool closed. */
    boolean offer(Runnable task) {
        pending.incrementAndGet();
        try {
            pool.execute(() -> {
                try {
                    task.run();
                } finally {
                    pending.decrementAndGet();
                }
            });
            return true;
        } catch (RejectedExecutionException e) {
            pending.decrementAndGet();
            return false;
        }
    }

    /** Waits until no task is queued or running. */
    void quiesce() {
        while (pending.get() > 0) Thread.onSpinWait();
    }

    /** Takes no more tasks (those queued still run). */
    void shutdown() {
        pool.shutdown();
    }

    /** After {@link #shutdown}: waits at most {@code seconds} for the tasks queued or running. */
    void awaitTermination(long seconds) throws InterruptedException {
        pool.awaitTermination(seconds, TimeUnit.SECONDS);
    }
}
