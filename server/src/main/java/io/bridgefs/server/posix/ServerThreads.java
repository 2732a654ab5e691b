package io.bridgefs.server.posix;

import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Every thread the server starts begins as the server. Linux gives a new thread a copy of its creator's
 * credentials, and {@link Credentials#held} (a thread-local) does not follow: a pool's worker created
 * lazily by a thread that acts as a 9P user (a network thread keeping a walk's user, an I/O thread in a
 * user's request that queues read-ahead) would run with that user's fsuid, groups and narrowed
 * capabilities while believing itself the server, and {@link Credentials#serverAgain} would not restore
 * it: an NBD request, another user's request, or write-back (which clears setuid bits when done as a
 * user) would then run as the wrong user. So each thread sets the server's credentials before its first task.
 */
public final class ServerThreads {
    private ServerThreads() {}

    /** {@code task}, run as the server whatever the thread was given at its start. */
    public static Runnable startingAsServer(Runnable task) {
        return () -> {
            Credentials.restore();
            task.run();
        };
    }

    /** A daemon thread named {@code name} running {@code task} as the server (not started). */
    public static Thread daemon(String name, Runnable task) {
        Thread t = new Thread(startingAsServer(task), name);
        t.setDaemon(true);
        return t;
    }

    /**
     * A task that sets the credentials it runs with itself, first thing: a 9P request (its fid's user, or
     * the server). A {@link #pool} leaves the thread as the last task left it for such a task, so a thread
     * that answers one user's requests one after another switches once, not twice a request (eight system
     * calls and a capset each way).
     */
    public interface UserRequest extends Runnable {}

    /**
     * A fixed pool of {@code threads} server threads that runs every task but a {@link UserRequest} as the
     * server, whatever user the thread's last task acted as: NBD requests, cold reads and anything else
     * submitted never run with a 9P user's credentials.
     */
    public static ThreadPoolExecutor pool(int threads, String prefix) {
        return new ThreadPoolExecutor(threads, threads, 60, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), factory(prefix, true)) {
            @Override
            protected void beforeExecute(Thread t, Runnable r) {
                if (!(r instanceof UserRequest)) Credentials.serverAgain();
            }
        };
    }

    /** Daemon threads named {@code prefix}, or {@code prefix-N} if {@code numbered}, each starting as the server. */
    public static ThreadFactory factory(String prefix, boolean numbered) {
        AtomicInteger n = new AtomicInteger();
        return r -> daemon(numbered ? prefix + "-" + n.incrementAndGet() : prefix, r);
    }
}
