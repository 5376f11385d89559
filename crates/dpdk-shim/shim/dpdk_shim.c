/*
 * The C side of the dpdk-shim crate: real symbols for DPDK's static inline fast-path
 * functions (bursts, mbuf alloc/free/data) and a few multi-step operations (port setup,
 * port close) so the Rust side never needs DPDK's struct layouts. Every function here is
 * a thin wrapper; the Rust module `ffi` declares them.
 */
#include <stdint.h>
#include <string.h>

#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

struct sb_dpdk_port_stats {
    uint64_t ipackets;
    uint64_t opackets;
    uint64_t imissed;
    uint64_t ierrors;
    uint64_t oerrors;
    uint64_t rx_nombuf;
};

int sb_dpdk_eal_init(int argc, char **argv) { return rte_eal_init(argc, argv); }

int sb_dpdk_errno(void) { return rte_errno; }

const char *sb_dpdk_strerror(int errnum) { return rte_strerror(errnum); }

int sb_dpdk_thread_register(void) { return rte_thread_register(); }

void sb_dpdk_thread_unregister(void) { rte_thread_unregister(); }

int sb_dpdk_port_by_name(const char *name, uint16_t *port) {
    return rte_eth_dev_get_port_by_name(name, port);
}

int sb_dpdk_dev_probe(const char *devargs) { return rte_dev_probe(devargs); }

int sb_dpdk_port_socket(uint16_t port) { return rte_eth_dev_socket_id(port); }

struct rte_mempool *sb_dpdk_pool_create(const char *name, unsigned n, unsigned cache,
                                        int socket) {
    return rte_pktmbuf_pool_create(name, n, cache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
}

/*
 * Configures `port` with one rx and one tx queue (descriptor counts adjusted to what the
 * device allows, written back), receiving into `pool`, and starts it. On failure returns
 * the negative error and names the step in `*failed`.
 */
int sb_dpdk_port_setup(uint16_t port, uint16_t *rx_desc, uint16_t *tx_desc,
                       struct rte_mempool *pool, const char **failed) {
    struct rte_eth_dev_info info;
    struct rte_eth_conf conf;
    int socket = rte_eth_dev_socket_id(port);
    int rc;

    if (socket < 0)
        socket = (int)rte_socket_id();
    rc = rte_eth_dev_info_get(port, &info);
    if (rc != 0) {
        *failed = "rte_eth_dev_info_get";
        return rc;
    }
    memset(&conf, 0, sizeof(conf));
    /* Every transmitted mbuf comes from one pool with a reference count of one. */
    if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
        conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
    rc = rte_eth_dev_configure(port, 1, 1, &conf);
    if (rc != 0) {
        *failed = "rte_eth_dev_configure";
        return rc;
    }
    rc = rte_eth_dev_adjust_nb_rx_tx_desc(port, rx_desc, tx_desc);
    if (rc != 0) {
        *failed = "rte_eth_dev_adjust_nb_rx_tx_desc";
        return rc;
    }
    rc = rte_eth_rx_queue_setup(port, 0, *rx_desc, (unsigned)socket, NULL, pool);
    if (rc != 0) {
        *failed = "rte_eth_rx_queue_setup";
        return rc;
    }
    rc = rte_eth_tx_queue_setup(port, 0, *tx_desc, (unsigned)socket, NULL);
    if (rc != 0) {
        *failed = "rte_eth_tx_queue_setup";
        return rc;
    }
    rc = rte_eth_dev_start(port);
    if (rc != 0) {
        *failed = "rte_eth_dev_start";
        return rc;
    }
    return 0;
}

int sb_dpdk_port_mac(uint16_t port, uint8_t mac[6]) {
    struct rte_ether_addr addr;
    int rc = rte_eth_macaddr_get(port, &addr);
    if (rc == 0)
        memcpy(mac, addr.addr_bytes, 6);
    return rc;
}

/* Stops and closes the port and removes its device, so the same devargs can be probed again. */
void sb_dpdk_port_close(uint16_t port) {
    struct rte_eth_dev_info info;
    struct rte_device *device = NULL;

    if (rte_eth_dev_info_get(port, &info) == 0)
        device = info.device;
    rte_eth_dev_stop(port);
    rte_eth_dev_close(port);
    if (device != NULL)
        rte_dev_remove(device);
}

int sb_dpdk_port_stats(uint16_t port, struct sb_dpdk_port_stats *out) {
    struct rte_eth_stats stats;
    int rc = rte_eth_stats_get(port, &stats);
    if (rc != 0)
        return rc;
    out->ipackets = stats.ipackets;
    out->opackets = stats.opackets;
    out->imissed = stats.imissed;
    out->ierrors = stats.ierrors;
    out->oerrors = stats.oerrors;
    out->rx_nombuf = stats.rx_nombuf;
    return 0;
}

uint16_t sb_dpdk_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n) {
    return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t sb_dpdk_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n) {
    return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *sb_dpdk_mbuf_alloc(struct rte_mempool *pool) { return rte_pktmbuf_alloc(pool); }

void sb_dpdk_mbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

/*
 * The first segment's bytes: returns the data pointer and writes its length, whether the
 * packet is all in that segment, and whether the device flagged a bad IP or L4 checksum.
 */
const uint8_t *sb_dpdk_mbuf_data(const struct rte_mbuf *m, uint16_t *len, int *contiguous,
                                 int *checksum_bad) {
    uint64_t flags = m->ol_flags;
    *len = m->data_len;
    *contiguous = m->nb_segs == 1 && m->pkt_len == m->data_len;
    *checksum_bad =
        (flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
        (flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) == RTE_MBUF_F_RX_L4_CKSUM_BAD;
    return rte_pktmbuf_mtod(m, const uint8_t *);
}

/* Appends `len` bytes to the packet; NULL when the last segment has no such tailroom. */
uint8_t *sb_dpdk_mbuf_append(struct rte_mbuf *m, uint16_t len) {
    return (uint8_t *)rte_pktmbuf_append(m, len);
}
