/* SPDX-License-Identifier: Apache-2.0 */
/* internal.h -- helpers shared by the protocol's own files; not installed. */
#ifndef AT_PROTOCOL_INTERNAL_H
#define AT_PROTOCOL_INTERNAL_H

#include "alphatop/protocol.h"

/* Message type from its wire name: AT_OK or AT_ERR_NOTFOUND. */
int at_proto_type_parse_(const char *name, at_proto_type *out);

/* Records a rejection in *err (may be NULL) and returns its status. printf-style message. */
int at_proto_fail_(at_proto_error *err, at_proto_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The ndim a layer kind requires. */
int at_proto_kind_ndim_(at_proto_kind k);

#endif
