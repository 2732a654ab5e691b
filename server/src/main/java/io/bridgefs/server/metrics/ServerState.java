package io.bridgefs.server.metrics;

/**
 * What the server holds for its clients at one moment: connections by path (nbd, 9p), connections
 * refused at the door and closed for idling or stalling, open descriptors, 9P fids, and request memory.
 */
public record ServerState(long[] connections, long[] refused, long[] timedOut, long openDescriptors, long fids,
                          long requestMemory, long requestMemoryLimit, long tlsHandshakesOk, long tlsHandshakesFailed,
                          long tlsConnections) {}
