// The gRPC scenarios' Greeter on grpc-go, the grpc-go peer of `python -m bench` (bench/servers.py generates pb/
// from examples/native/grpc_greeter/greeter.proto with protoc-gen-go and protoc-gen-go-grpc, then builds this into
// bench/.grpc/greeter-go): `greeter-go PORT`.
package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"google.golang.org/grpc"

	pb "covet.example/greeter/pb"
)

type greeter struct {
	pb.UnimplementedGreeterServer
}

func (greeter) SayHello(_ context.Context, request *pb.HelloRequest) (*pb.HelloReply, error) {
	return &pb.HelloReply{Message: "Hello, " + request.GetName()}, nil
}

func (greeter) SayHellos(request *pb.HelloRequest, stream grpc.ServerStreamingServer[pb.HelloReply]) error {
	reply := &pb.HelloReply{Message: "Hello, " + request.GetName()}
	for i := int32(0); i < request.GetCount(); i++ {
		if err := stream.Send(reply); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	listener, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	pb.RegisterGreeterServer(server, greeter{})
	fmt.Printf("serving on http://%s\n", listener.Addr())
	if err := server.Serve(listener); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
