#include "pcn_curl.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_status;

static void global_init(void)
{
	global_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t collect(char *data, size_t size, size_t count, void *user)
{
	pcn_http_response *response = user;
	size_t bytes = size * count;

	if (response->stream_fd >= 0) {
		if (response->status == 0)
			curl_easy_getinfo(response->handle, CURLINFO_RESPONSE_CODE, &response->status);
		if (response->status == 200) {
			for (size_t done = 0; done < bytes;) {
				ssize_t written = write(response->stream_fd, data + done, bytes - done);
				if (written < 0 && errno == EINTR)
					continue;
				if (written <= 0) {
					response->stream_closed = 1;
					return 0; /* curl stops with CURLE_WRITE_ERROR */
				}
				done += (size_t)written;
			}
			return bytes;
		}
	}
	unsigned char *grown = realloc(response->body, response->length + bytes + 1);

	if (!grown)
		return 0; /* curl reports CURLE_WRITE_ERROR */
	memcpy(grown + response->length, data, bytes);
	response->body = grown;
	response->length += bytes;
	return bytes;
}

int pcn_http_perform(const char *url, const char *method, const void *body, size_t body_length,
		     const char *const *headers, size_t header_count, const char *ca_file,
		     long timeout_seconds, int stream_fd, pcn_http_response *response)
{
	struct curl_slist *list = NULL;
	CURLcode code;
	CURL *curl;

	memset(response, 0, sizeof(*response));
	response->stream_fd = stream_fd;
	pthread_once(&global_once, global_init);
	if (global_status != CURLE_OK) {
		snprintf(response->error, sizeof(response->error), "libcurl: %s", curl_easy_strerror(global_status));
		return -1;
	}
	curl = curl_easy_init();
	if (!curl) {
		snprintf(response->error, sizeof(response->error), "libcurl: cannot create a handle");
		return -1;
	}
	for (size_t i = 0; i < header_count; i++)
		list = curl_slist_append(list, headers[i]);
	/* "Expect: 100-continue" would cost a round trip on every large body. */
	list = curl_slist_append(list, "Expect:");

	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	response->handle = curl;
	if (stream_fd >= 0)
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeout_seconds);
	else
		curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_seconds);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, response->error);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, response);
	if (ca_file)
		curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
	if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_length);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
	}
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);

	code = curl_easy_perform(curl);
	if (code == CURLE_WRITE_ERROR && response->stream_closed)
		code = CURLE_OK;
	if (code == CURLE_OK) {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response->status);
	} else if (response->error[0] == '\0') {
		snprintf(response->error, sizeof(response->error), "%s", curl_easy_strerror(code));
	}
	curl_easy_cleanup(curl);
	response->handle = NULL;
	curl_slist_free_all(list);
	return code == CURLE_OK ? 0 : -1;
}

void pcn_http_response_free(pcn_http_response *response)
{
	free(response->body);
	response->body = NULL;
	response->length = 0;
}
