package io.bridgefs.server.metrics;

/**
 * What the server holds for its clients at one moment: connections by path (nbd, 9p), connections
 * refused at the door and closed for idling or stalling, open descriptors, 9P fids, request memory,
 * the server's own time per 9P request by message type ({p50, p99} in seconds), and how many 9P requests
 * of each type were answered on the network thread without the executor.
 */
public record ServerState(long[] connections, long[] refused, long[] timedOut, long openDescriptors, long fids,
                          long requestMemory, long requestMemoryLimit, long tlsHandshakesOk, long tlsHandshakesFailed,
                          long tlsConnections, java.util.Map<String, double[]> p9Latency, java.util.Map<String, Long> p9Fast) {

    public ServerState(long[] connections, long[] refused, long[] timedOut, long openDescriptors, long fids, long requestMemory,
                       long requestMemoryLimit, long tlsHandshakesOk, long tlsHandshakesFailed, long tlsConnections) {
        this(connections, refused, timedOut, openDescriptors, fids, requestMemory, requestMemoryLimit, tlsHandshakesOk,
                tlsHandshakesFailed, tlsConnections, java.util.Map.of(), java.util.Map.of());
    }
}
