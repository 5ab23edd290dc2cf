// The peer of the dynamic endpoint in the benchmark (bench/iiif_peer.py): samvera's iiif-processor, the processor of
// serverless-iiif, behind a plain Node HTTP server, reading its source from S3 the way serverless-iiif does: a stream
// of the whole object per request (GetObject), dimensions from the object's metadata (HeadObject).
//
//   NODE_PATH=CACHE/node_modules node bench/iiif_peer_server.js ENDPOINT BUCKET PREFIX
//
// ENDPOINT is the S3 stand-in (path-style, unsigned: the stand-in checks no signature). The object for id ID is
// BUCKET/PREFIX + ID + ".tif"; its x-amz-meta-pages metadata lists every pyramid page as WxH,WxH,... (largest
// first), so the processor picks the smallest page that has the pixels, as serverless-iiif does with its
// dimension metadata. Prints "READY http://127.0.0.1:PORT" and serves until its standard input closes.
"use strict";

const http = require("node:http");
const { Processor } = require("iiif-processor");

const [endpoint, bucket, prefix] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function objectUrl(id) {
  return `${endpoint}/${bucket}/${prefix}${id.split("/").map(encodeURIComponent).join("/")}.tif`;
}

function s3(method, id) {
  return new Promise((resolve, reject) => {
    const request = http.request(objectUrl(id), { method, agent }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`${method} ${id}: S3 answered ${response.statusCode}`));
        return;
      }
      resolve(response);
    });
    request.on("error", reject);
    request.end();
  });
}

async function streamResolver({ id }) {
  return await s3("GET", id);
}

async function dimensionFunction({ id }) {
  const response = await s3("HEAD", id);
  response.resume();
  const pages = response.headers["x-amz-meta-pages"];
  if (!pages) return null; // the processor then falls back to reading the whole stream with sharp
  return pages.split(",").map((page) => {
    const [width, height] = page.split("x").map(Number);
    return { width, height };
  });
}

const server = http.createServer(async (req, res) => {
  const url = `http://${req.headers.host}${req.url}`;
  try {
    const processor = new Processor(url, streamResolver, {
      dimensionFunction,
      max: { width: 10000, height: 10000, area: 100000000 },
    });
    const result = await processor.execute();
    if (result.type === "error") {
      res.writeHead(result.statusCode, { "Content-Type": "text/plain" });
      res.end(result.message);
    } else if (result.type === "redirect") {
      res.writeHead(302, { Location: result.location });
      res.end();
    } else {
      res.writeHead(200, { "Content-Type": result.contentType, "Content-Length": result.body.length });
      res.end(result.body);
    }
  } catch (error) {
    res.writeHead(500, { "Content-Type": "text/plain" });
    res.end(String(error && error.stack ? error.stack : error));
  }
});

server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`READY http://127.0.0.1:${server.address().port}\n`);
});
process.stdin.on("end", () => server.close(() => process.exit(0)));
process.stdin.on("close", () => process.exit(0));
process.stdin.resume();
