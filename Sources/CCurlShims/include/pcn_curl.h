#ifndef PCN_CURL_H
#define PCN_CURL_H

#include <stddef.h>

/* One HTTP exchange through libcurl, for pcn-api's clients (URLSession on Linux cannot trust a given CA). */
typedef struct pcn_http_response {
	long status;          /* HTTP status; 0 when no response came */
	unsigned char *body;  /* malloc'd; free with pcn_http_response_free */
	size_t length;
	char error[256];      /* why no response came */
	int stream_fd;        /* >= 0: a 200 answer's body is written here as it comes instead of collected */
	int stream_closed;    /* the reader of stream_fd went away (the transfer ended there, no error) */
	void *handle;         /* the transfer's, while it runs */
} pcn_http_response;

/* Performs `method url` with an optional body and header lines ("Name: value"). `ca_file` (may be
 * NULL: the system's CAs) is the PEM bundle an https server's certificate must chain to.
 * `stream_fd` >= 0 streams a 200 answer's body to that fd (other answers are collected), with no
 * overall timeout (`timeout_seconds` then bounds the connection only).
 * Returns 0 when a response came (whatever its status), -1 otherwise with `error` set. */
int pcn_http_perform(const char *url, const char *method, const void *body, size_t body_length,
		     const char *const *headers, size_t header_count, const char *ca_file,
		     long timeout_seconds, int stream_fd, pcn_http_response *response);

void pcn_http_response_free(pcn_http_response *response);

#endif
