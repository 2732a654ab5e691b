package io.bridgefs.server.nbd;

import java.util.concurrent.ExecutorService;

/** What every NBD connection shares: the exports and the executor that does file work off the event loop. */
public record NbdServerContext(NbdExports exports, ExecutorService executor) {}
