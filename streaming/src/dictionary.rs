//! The zlib dictionary every SPDY/3 header block is compressed against.
//!
//! A protocol constant, published in the SPDY Protocol draft 3 (section 2.6.10.1, "Compression"):
//! length-prefixed header names and values that HTTP traffic commonly carries, then a run of
//! status lines, dates and media types. Both sides preset it on their zlib streams, so a single
//! wrong byte makes the peer's `inflateSetDictionary` fail; the test checks the Adler-32 that
//! kubectl announces in its zlib header (`0xe3c6a7c2`).

pub(crate) const SPDY3_DICTIONARY: &[u8; 1423] = b"\
    \x00\x00\x00\x07options\
    \x00\x00\x00\x04head\
    \x00\x00\x00\x04post\
    \x00\x00\x00\x03put\
    \x00\x00\x00\x06delete\
    \x00\x00\x00\x05trace\
    \x00\x00\x00\x06accept\
    \x00\x00\x00\x0eaccept-charset\
    \x00\x00\x00\x0faccept-encoding\
    \x00\x00\x00\x0faccept-language\
    \x00\x00\x00\x0daccept-ranges\
    \x00\x00\x00\x03age\
    \x00\x00\x00\x05allow\
    \x00\x00\x00\x0dauthorization\
    \x00\x00\x00\x0dcache-control\
    \x00\x00\x00\x0aconnection\
    \x00\x00\x00\x0ccontent-base\
    \x00\x00\x00\x10content-encoding\
    \x00\x00\x00\x10content-language\
    \x00\x00\x00\x0econtent-length\
    \x00\x00\x00\x10content-location\
    \x00\x00\x00\x0bcontent-md5\
    \x00\x00\x00\x0dcontent-range\
    \x00\x00\x00\x0ccontent-type\
    \x00\x00\x00\x04date\
    \x00\x00\x00\x04etag\
    \x00\x00\x00\x06expect\
    \x00\x00\x00\x07expires\
    \x00\x00\x00\x04from\
    \x00\x00\x00\x04host\
    \x00\x00\x00\x08if-match\
    \x00\x00\x00\x11if-modified-since\
    \x00\x00\x00\x0dif-none-match\
    \x00\x00\x00\x08if-range\
    \x00\x00\x00\x13if-unmodified-since\
    \x00\x00\x00\x0dlast-modified\
    \x00\x00\x00\x08location\
    \x00\x00\x00\x0cmax-forwards\
    \x00\x00\x00\x06pragma\
    \x00\x00\x00\x12proxy-authenticate\
    \x00\x00\x00\x13proxy-authorization\
    \x00\x00\x00\x05range\
    \x00\x00\x00\x07referer\
    \x00\x00\x00\x0bretry-after\
    \x00\x00\x00\x06server\
    \x00\x00\x00\x02te\
    \x00\x00\x00\x07trailer\
    \x00\x00\x00\x11transfer-encoding\
    \x00\x00\x00\x07upgrade\
    \x00\x00\x00\x0auser-agent\
    \x00\x00\x00\x04vary\
    \x00\x00\x00\x03via\
    \x00\x00\x00\x07warning\
    \x00\x00\x00\x10www-authenticate\
    \x00\x00\x00\x06method\
    \x00\x00\x00\x03get\
    \x00\x00\x00\x06status\
    \x00\x00\x00\x06200 OK\
    \x00\x00\x00\x07version\
    \x00\x00\x00\x08HTTP/1.1\
    \x00\x00\x00\x03url\
    \x00\x00\x00\x06public\
    \x00\x00\x00\x0aset-cookie\
    \x00\x00\x00\x0akeep-alive\
    \x00\x00\x00\x06origin\
    100101201202205206300302303304305306307\
    402405406407408409410411412413414415416417\
    502504505\
    203 Non-Authoritative Information\
    204 No Content\
    301 Moved Permanently\
    400 Bad Request\
    401 Unauthorized\
    403 Forbidden\
    404 Not Found\
    500 Internal Server Error\
    501 Not Implemented\
    503 Service Unavailable\
    Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec\
\x2000:00:00\
\x20Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT\
    chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,\
    text/plain,text/javascript,public\
    private\
    max-age=\
    gzip,deflate,sdch\
    charset=utf-8\
    charset=iso-8859-1,utf-,*,enq=0.";

#[cfg(test)]
mod tests {
    use super::SPDY3_DICTIONARY;

    /// Adler-32 (RFC 1950) computed here so the test needs nothing beyond the constant.
    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn matches_the_dictionary_id_kubectl_announces() {
        assert_eq!(adler32(SPDY3_DICTIONARY), 0xe3c6_a7c2);
    }
}
