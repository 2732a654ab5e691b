package io.bridgefs.server.posix;

import static org.junit.jupiter.api.Assertions.*;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A thread started by one that acts as a 9P user: the kernel hands it the user's credentials, and the
 * server's threads put their own back before running anything. Needs a root server (CI runs as root).
 */
class ServerThreadsTest {
    /** fsuid and {@link Credentials#held} as the new thread sees them at its start, it started while this thread holds uid 1000. */
    static String startedHolding1000(java.util.function.Function<Runnable, Thread> start) throws Exception {
        BlockingQueue<String> seen = new ArrayBlockingQueue<>(1);
        Credentials.hold(Credentials.identity(1000));
        try {
            Thread t = start.apply(() -> seen.add("fsuid " + Credentials.fsuid() + " held " + (Credentials.held() == null ? "none" : Credentials.held().uid())));
            t.start();
            t.join(10_000);
        } finally {
            Credentials.serverAgain();
        }
        assertEquals(0, Credentials.fsuid());
        return seen.poll(10, TimeUnit.SECONDS);
    }

    static boolean switchesUsers() {
        return SwitchesUsers.orSay("ServerThreadsTest:");
    }

    /** Why the server's threads need it: a plain thread is the user as far as the kernel goes, and nothing in it knows. */
    @Test
    void aPlainThreadStartsWithItsCreatorsCredentialsUnknownToItself() throws Exception {
        if (!switchesUsers()) return;
        assertEquals("fsuid 1000 held none", startedHolding1000(Thread::new));
    }

    @Test
    void theServersThreadsStartAsTheServer() throws Exception {
        if (!switchesUsers()) return;
        assertEquals("fsuid 0 held none", startedHolding1000(r -> ServerThreads.daemon("t", r)));
        assertEquals("fsuid 0 held none", startedHolding1000(r -> ServerThreads.factory("t", true).newThread(r)));
        assertEquals("fsuid 0 held none", startedHolding1000(r -> new Thread(ServerThreads.startingAsServer(r))));
    }

    /** A pool starts its worker on the thread that submits, as the I/O executor does for its first tasks. */
    @Test
    void aPoolsWorkerStartedByAUsersThreadRunsAsTheServer() throws Exception {
        if (!switchesUsers()) return;
        var plain = new java.util.concurrent.ThreadPoolExecutor(1, 1, 1, TimeUnit.SECONDS, new java.util.concurrent.LinkedBlockingQueue<>());
        var server = new java.util.concurrent.ThreadPoolExecutor(1, 1, 1, TimeUnit.SECONDS, new java.util.concurrent.LinkedBlockingQueue<>(),
                ServerThreads.factory("t", true));
        try {
            assertEquals(1000, fsuidOfFirstTask(plain));
            assertEquals(0, fsuidOfFirstTask(server));
        } finally {
            plain.shutdownNow();
            server.shutdownNow();
        }
    }

    private static int fsuidOfFirstTask(java.util.concurrent.ExecutorService pool) throws Exception {
        java.util.concurrent.Future<Integer> f;
        Credentials.hold(Credentials.identity(1000));
        try {
            f = pool.submit(Credentials::fsuid);
        } finally {
            Credentials.serverAgain();
        }
        return f.get(10, TimeUnit.SECONDS);
    }

    /**
     * The I/O pool: a 9P request ({@link ServerThreads.UserRequest}) leaves its user on the thread for the
     * next one, and every other task (an NBD request, a cold read) runs as the server all the same.
     */
    @Test
    void thePoolRunsEveryTaskButAUserRequestAsTheServer() throws Exception {
        if (!switchesUsers()) return;
        var pool = ServerThreads.pool(1, "t");
        try {
            java.util.function.Supplier<Integer> fsuid = Credentials::fsuid;
            BlockingQueue<String> seen = new ArrayBlockingQueue<>(8);
            pool.execute((ServerThreads.UserRequest) () -> {
                try {
                    Credentials.hold(Credentials.identity(1000));
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
                seen.add("request " + fsuid.get());
            });
            pool.execute((ServerThreads.UserRequest) () -> seen.add("next request " + fsuid.get()));
            pool.execute(() -> seen.add("task " + fsuid.get() + " held " + Credentials.held()));
            pool.execute((ServerThreads.UserRequest) () -> seen.add("request after it " + fsuid.get()));
            pool.submit(() -> seen.add("submitted")).get(10, TimeUnit.SECONDS);
            assertEquals(java.util.List.of("request 1000", "next request 1000", "task 0 held null", "request after it 0", "submitted"),
                    new java.util.ArrayList<>(seen));
        } finally {
            pool.shutdownNow();
        }
    }
}
