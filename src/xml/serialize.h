/* SPDX-License-Identifier: AGPL-3.0-or-later
 *
 * Serializer of element trees to XML text for the wire. Namespace
 * declarations are emitted only where an element's namespace differs from
 * its parent's (the top element compares with `parent_ns`, the stream's
 * default namespace, e.g. "jabber:client"), so a forwarded stanza carries no
 * redundant xmlns. Namespaced attributes other than xml:* get a generated
 * prefix declared on their element. Output is UTF-8 with &lt; &gt; &amp;
 * &quot; &apos; escaped as RFC 6120 §11 requires; nothing else is produced
 * (no declarations, comments or PIs).
 */
#ifndef KR_XML_SERIALIZE_H
#define KR_XML_SERIALIZE_H

#include "core/buf.h"
#include "xml/tree.h"

/** Append the serialization of node (element or text) to out. */
void kr_xml_serialize(kr_buf *out, const kr_xml_node *node, const char *parent_ns);
/** Append text escaped for character data. */
void kr_xml_escape_text(kr_buf *out, const char *s, size_t len);
/** Append text escaped for a single-quoted attribute value. */
void kr_xml_escape_attr(kr_buf *out, const char *s, size_t len);

#endif
