package io.bridgefs.server.nbd;

import io.bridgefs.server.net.MemoryBudget;
import io.bridgefs.server.tls.NbdTls;
import java.util.concurrent.ExecutorService;

/**
 * What every NBD connection shares: the exports, the executor that does file work off the event loop,
 * and the server-wide budget for request and reply bytes.
 */
public record NbdServerContext(NbdExports exports, ExecutorService executor, MemoryBudget budget, NbdTls tls) {
    public NbdServerContext(NbdExports exports, ExecutorService executor) {
        this(exports, executor, new MemoryBudget(Long.MAX_VALUE / 4));
    }

    public NbdServerContext(NbdExports exports, ExecutorService executor, MemoryBudget budget) {
        this(exports, executor, budget, NbdTls.OFF);
    }
}
